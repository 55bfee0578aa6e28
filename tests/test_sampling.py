"""Samplers, schedules and denoisers against k-diffusion (the code A1111 runs), on an analytic denoiser and on a
tiny SD1-topology UNet; seeds per image; v-prediction; zero terminal SNR; CFG."""

from __future__ import annotations

import inspect

import pytest
import torch

import kdiffusion_ref
from sd1kit.dev.tiny import tiny_modules
from sd1kit.rng import ImageRNG
from sd1kit.sampling import schedules as K
from sd1kit.sampling.denoisers import CFGDenoiser, Denoiser
from sd1kit.sampling.noise import BrownianNoise
from sd1kit.sampling.registry import SAMPLERS, SCHEDULES, get_sigmas, initial_latent, resolve_sampler
from sd1kit.sampling.run import run_sampler

KD = kdiffusion_ref.load()
needs_kd = pytest.mark.skipif(KD is None, reason="k-diffusion (test reference) not installed")
SCHEDULE = K.DiscreteSchedule(K.sd1_alphas_cumprod())


class GaussianData:
    """Data ~ N(mu, s^2) per element: the exact x0-hat is (s^2 x + sigma^2 mu) / (s^2 + sigma^2)."""

    def __init__(self, shape, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.mu = torch.randn(shape, generator=g, dtype=torch.float64)
        self.s2 = torch.rand(shape, generator=g, dtype=torch.float64) + 0.1

    def __call__(self, x, sigma):
        s2sig = sigma.to(x.dtype).reshape(-1, *[1] * (x.ndim - 1)) ** 2
        return (self.s2 * x + s2sig * self.mu) / (self.s2 + s2sig)


class ReplayNoise:
    """The same noise sequence every time it is replayed: one generator, seeded, drawn in call order."""

    def __init__(self, like, seed=1234):
        self.like, self.g = like, torch.Generator().manual_seed(seed)

    def __call__(self, sigma, sigma_next):
        return torch.randn(self.like.shape, generator=self.g, dtype=self.like.dtype)


def _kd_noise(spec, x, sigmas, seeds):
    if spec.noise == "brownian":
        positive = sigmas[sigmas > 0]
        return KD[0].BrownianTreeNoiseSampler(x, positive.min(), sigmas.max(), seed=seeds)
    return ReplayNoise(x)


def _our_noise(spec, x, sigmas, seeds):
    if spec.noise == "brownian":
        positive = sigmas[sigmas > 0]
        return BrownianNoise(x, positive.min(), sigmas.max(), seeds)
    return ReplayNoise(x)


def _pairs():
    for spec in SAMPLERS:
        if spec.id in ("lcm", "restart") or spec.timesteps:  # A1111's own code, not k-diffusion's: tested below
            continue
        for schedule in {spec.scheduler or "uniform", "karras", "exponential"}:
            yield pytest.param(spec, schedule, id=f"{spec.id}-{schedule}")


def _run_both(spec, schedule_name, model, x, steps=8, seeds=(11, 12)):
    _, sched = resolve_sampler(spec.name, schedule_name)
    sigmas = get_sigmas(spec, sched, steps, SCHEDULE).double()
    x = x * sigmas[0]
    ref_fn = getattr(KD[0], "sample_" + (spec.id if spec.id != "dpmpp_2m_sde_heun" else "dpmpp_2m_sde"))
    kwargs = dict(spec.options)
    if "noise_sampler" in inspect.signature(ref_fn).parameters:
        kwargs["noise_sampler"] = _kd_noise(spec, x, sigmas, list(seeds))
    if spec.id in ("dpm_fast", "dpm_adaptive"):  # k-diffusion's own signature: the sigma range (and n)
        positive = sigmas[sigmas > 0]
        kwargs.update(sigma_min=positive.min(), sigma_max=sigmas.max())
        if spec.id == "dpm_fast":
            kwargs["n"] = len(sigmas) - 1
        expected = ref_fn(model, x.clone(), disable=True, **kwargs)
    else:
        expected = ref_fn(model, x.clone(), sigmas, disable=True, **kwargs)
    got = spec.function(model, x.clone(), sigmas, noise_sampler=_our_noise(spec, x, sigmas, list(seeds)), **spec.options)
    return got, expected


@needs_kd
@pytest.mark.parametrize("spec, schedule", list(_pairs()))
def test_samplers_match_k_diffusion_on_an_analytic_denoiser(spec, schedule):
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got, expected = _run_both(spec, schedule, GaussianData(x.shape[1:]), x)
    assert torch.linalg.norm(got - expected) <= 1e-5 * torch.linalg.norm(expected)


class _CompVisModel:
    """What k-diffusion's CompVisDenoiser wraps: apply_model(x, t, cond) and alphas_cumprod."""

    def __init__(self, unet, alphas_cumprod):
        self.unet, self.alphas_cumprod = unet, alphas_cumprod

    def apply_model(self, x, t, cond):
        return self.unet(x, t, encoder_hidden_states=cond).sample


@pytest.fixture(scope="module")
def tiny_unet():
    return tiny_modules(seed=2).unet.double()


def _raw(unet):
    return lambda x, t, context, image_cond: unet(x, t, encoder_hidden_states=context).sample


@needs_kd
@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_denoiser_matches_k_diffusion_compvis(tiny_unet, prediction):
    context = torch.randn(2, 77, 32, dtype=torch.float64)
    ours = Denoiser(_raw(tiny_unet), SCHEDULE, prediction)
    wrapper = KD[1].CompVisVDenoiser if prediction == "v" else KD[1].CompVisDenoiser
    ref = wrapper(_CompVisModel(tiny_unet, K.sd1_alphas_cumprod()))
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64) * 3
    sigma = torch.tensor([2.5, 0.7], dtype=torch.float64)
    torch.testing.assert_close(ours(x, sigma, context), ref(x, sigma, cond=context), rtol=1e-10, atol=1e-10)


@needs_kd
@pytest.mark.parametrize("name", [p.values[0].name for p in _pairs() if p.values[1] == (p.values[0].scheduler or "uniform")])
def test_samplers_match_k_diffusion_on_a_tiny_unet(tiny_unet, name):
    spec, _ = resolve_sampler(name)
    context = torch.randn(2, 77, 32, dtype=torch.float64)
    den = Denoiser(_raw(tiny_unet), SCHEDULE, "epsilon")
    model = lambda x, sigma: den(x, sigma, context)
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got, expected = _run_both(spec, spec.scheduler or "uniform", model, x, steps=4)
    assert torch.linalg.norm(got - expected) <= 1e-5 * torch.linalg.norm(expected)


@needs_kd
@pytest.mark.parametrize("name", ["karras", "exponential", "polyexponential"])
def test_schedules_match_k_diffusion(name):
    ours = getattr(K, f"get_sigmas_{name}")(13, SCHEDULE.sigma_min, SCHEDULE.sigma_max)
    ref = getattr(KD[0], f"get_sigmas_{name}")(13, SCHEDULE.sigma_min, SCHEDULE.sigma_max)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=0)


@needs_kd
def test_uniform_and_t_mapping_match_k_diffusion():
    ref = KD[1].DiscreteSchedule(SCHEDULE.sigmas, quantize=False)
    torch.testing.assert_close(SCHEDULE.get_sigmas(17), ref.get_sigmas(17))
    s = torch.tensor([0.03, 0.5, 1.0, 7.7, 14.0])
    torch.testing.assert_close(SCHEDULE.sigma_to_t(s), ref.sigma_to_t(s))
    torch.testing.assert_close(SCHEDULE.sigma_to_t(s, quantize=True), ref.sigma_to_t(s, quantize=True))


@pytest.mark.parametrize("schedule", SCHEDULES[1:], ids=lambda s: s.id)
def test_every_schedule_is_well_formed(schedule):
    sampler, _ = resolve_sampler("Euler")
    sigmas = get_sigmas(sampler, schedule, 12, SCHEDULE)
    # As in A1111: "DDIM" yields one step more for step counts that do not divide 1000; "KL Optimal" ends at
    # sigma_min rather than 0.
    assert len(sigmas) == (14 if schedule.id == "ddim" else 13)
    assert float(sigmas[-1]) == (pytest.approx(SCHEDULE.sigma_min) if schedule.id == "kl_optimal" else 0.0)
    assert bool((sigmas[:-1] > 0).all()) and bool((sigmas[1:] <= sigmas[:-1]).all())
    assert float(sigmas[0]) <= SCHEDULE.sigma_max * 1.001


def test_align_your_steps_uses_nvidias_sd15_values():
    assert K.get_sigmas_align_your_steps(11, 0, 0).tolist()[:-1] == pytest.approx(list(K.AYS_SD1_SIGMAS))


def test_discard_penultimate_sigma():
    spec, sched = resolve_sampler("DPM2")
    sigmas = get_sigmas(spec, sched, 10, SCHEDULE)
    full = K.get_sigmas_karras(11, SCHEDULE.sigma_min, SCHEDULE.sigma_max)
    assert len(sigmas) == 11 and torch.equal(sigmas, torch.cat([full[:-2], full[-1:]]))


def test_legacy_names_resolve():
    assert [(s.name, k.name) for s, k in map(resolve_sampler, ["DPM++ 2M Karras", "DPM++ 2M", "Euler a",
                                                               "DPM++ SDE Karras", "DPM++ 2M SDE Heun Exponential"])] == [
        ("DPM++ 2M", "Karras"), ("DPM++ 2M", "Karras"), ("Euler a", "Uniform"), ("DPM++ SDE", "Karras"),
        ("DPM++ 2M SDE Heun", "Exponential")]
    assert resolve_sampler("DPM++ 2M", "Exponential")[1].name == "Exponential"
    assert resolve_sampler("k_euler_a")[0].name == "Euler a"


def test_unknown_sampler_suggests():
    from sd1kit.errors import Sd1kitError

    with pytest.raises(Sd1kitError, match="did you mean 'Euler a'"):
        resolve_sampler("Eular a")


class Unguided:
    """A model without CFG seen as a CFG denoiser whose negative prompt gives what the prompt gives (DDIM CFG++
    reads the uncond x0-hat of the latest call)."""

    def __init__(self, fn):
        self.fn, self.last_uncond_denoised = fn, None

    def __call__(self, x, sigma):
        self.last_uncond_denoised = out = self.fn(x, sigma)
        return out


@pytest.mark.parametrize("spec", [s for s in SAMPLERS], ids=lambda s: s.id)
def test_image_i_of_a_batch_equals_its_seed_alone(spec):
    _, sched = resolve_sampler(spec.name)
    sigmas = get_sigmas(spec, sched, 6, SCHEDULE)
    data = GaussianData((4, 8, 8))
    model = Unguided(lambda x, sigma: data(x.double(), sigma).float())
    seeds = [21, 22, 23]

    def generate(batch_seeds):
        rng = ImageRNG((4, 8, 8), batch_seeds, source="CPU", eta_noise_seed_delta=31337)
        x = initial_latent(spec, rng.first(), sigmas)
        return run_sampler(spec, model, x, sigmas, rng=rng, seeds=batch_seeds, schedule=SCHEDULE)

    batch = generate(seeds)
    for i, seed in enumerate(seeds):
        torch.testing.assert_close(batch[i], generate([seed])[0], rtol=0, atol=1e-6)


class PointData:
    """A v-prediction model that is exact for data concentrated at x0: v = (x/(s^2+1) - x0) sqrt(s^2+1)/s."""

    def __init__(self, x0):
        self.x0 = x0

    def __call__(self, x_in, t, context, image_cond):
        s = SCHEDULE.t_to_sigma(t).double().reshape(-1, 1, 1, 1)
        x = x_in * (s ** 2 + 1) ** 0.5
        return (x / (s ** 2 + 1) - self.x0) * (s ** 2 + 1) ** 0.5 / s


@pytest.mark.parametrize("name", ["Euler", "DPM++ 2M", "Heun"])
def test_v_prediction_is_exact_only_with_prediction_v(name):
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    spec, sched = resolve_sampler(name)
    sigmas = get_sigmas(spec, sched, 10, SCHEDULE).double()
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * sigmas[0]
    for prediction, exact in (("v", True), ("epsilon", False)):
        den = Denoiser(PointData(x0), SCHEDULE, prediction)
        out = run_sampler(spec, lambda x, s: den(x, s), start.clone(), sigmas)
        assert torch.allclose(out, x0, atol=1e-6) == exact


def test_zero_terminal_snr_schedule():
    plain, z = K.sd1_alphas_cumprod(), K.sd1_alphas_cumprod(zero_terminal_snr=True)
    assert float(z[-1]) == pytest.approx(4.8973451890853435e-08, rel=1e-6)
    assert float(z[0]) == pytest.approx(float(plain[0]), rel=1e-6)
    ds = K.DiscreteSchedule(z)
    assert ds.sigma_max == pytest.approx(4518.76, rel=1e-4)
    assert float(ds.sigmas[-2]) == pytest.approx(2254.24, rel=1e-3)
    assert K.DiscreteSchedule(plain).sigma_max == pytest.approx(14.614641, rel=1e-6)


def _cfg(den, cond, uncond, **kw):
    return CFGDenoiser(den, lambda step: [[(cond, 1.0)]], lambda step: uncond, **kw)


def test_cfg_combines_and_batches(tiny_unet):
    den = Denoiser(_raw(tiny_unet), SCHEDULE)
    cond, uncond = torch.randn(1, 77, 32, dtype=torch.float64), torch.randn(1, 77, 32, dtype=torch.float64)
    x, sigma = torch.randn(1, 4, 8, 8, dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    cfg = _cfg(den, cond, uncond, cfg_scale=7.0)
    out = cfg(x, sigma)
    c, u = den(x, sigma, cond), den(x, sigma, uncond)
    torch.testing.assert_close(out, u + 7.0 * (c - u))
    assert cfg.calls == [2]  # cond and uncond in one UNet call
    cfg_long = _cfg(den, torch.cat([cond, cond], 1), uncond)
    cfg_long(x, sigma)
    assert cfg_long.calls == [1, 1]  # different lengths: run separately, as A1111 does without padding


def test_cfg_rescale_and_ngms(tiny_unet):
    den = Denoiser(_raw(tiny_unet), SCHEDULE, "v")
    cond, uncond = torch.randn(1, 77, 32, dtype=torch.float64), torch.randn(1, 77, 32, dtype=torch.float64)
    x, sigma = torch.randn(1, 4, 8, 8, dtype=torch.float64), torch.tensor([3.0], dtype=torch.float64)
    plain = _cfg(den, cond, uncond, cfg_scale=7.0)(x, sigma)
    torch.testing.assert_close(_cfg(den, cond, uncond, cfg_scale=7.0, cfg_rescale=0.0)(x, sigma), plain)
    rescaled = _cfg(den, cond, uncond, cfg_scale=7.0, cfg_rescale=1.0)(x, sigma)
    to_v = lambda x0: (x / 10 - x0) * 10 ** 0.5 / 3.0
    assert to_v(rescaled).std().item() == pytest.approx(to_v(den(x, sigma, cond)).std().item(), rel=1e-9)
    ngms = _cfg(den, cond, uncond, cfg_scale=7.0, s_min_uncond=5.0)
    ngms(x, sigma)
    skipped = ngms(x, sigma)  # odd step below the threshold: cond only
    torch.testing.assert_close(skipped, den(x, sigma, cond))
    assert ngms.calls == [2, 1]


def test_interrupt_returns_the_last_denoised():
    spec, sched = resolve_sampler("Euler")
    sigmas = get_sigmas(spec, sched, 10, SCHEDULE)
    data = GaussianData((4, 8, 8))
    seen = []
    out = run_sampler(spec, lambda x, s: data(x.double(), s).float(), torch.randn(1, 4, 8, 8) * sigmas[0], sigmas,
                      callback=lambda i, sigma, latent: seen.append((i, latent)), should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3 and torch.equal(out, seen[-1][1])


def _diffusers_ddim(model_eps, x_vp, steps, eta, noise):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")
    sched.alphas_cumprod = K.sd1_alphas_cumprod().double()
    sched.final_alpha_cumprod = sched.alphas_cumprod[0]
    sched.set_timesteps(steps)
    for t in sched.timesteps[:-1]:  # A1111 stops on the lowest timestep instead of stepping from it
        x_vp = sched.step(model_eps(x_vp, int(t)), t, x_vp, eta=eta, variance_noise=noise() if eta else None).prev_sample
    return x_vp


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_diffusers_ddim_scheduler(eta):
    """A1111's DDIM (timesteps 1 + k*(1000//steps); steps - 1 model calls ending on timestep 1) = diffusers'
    DDIMScheduler with "leading" spacing and steps_offset 1, on the same alphas_cumprod, but for its last step."""
    data = GaussianData((4, 6, 6))
    ac = K.sd1_alphas_cumprod().double()

    def eps(x_vp, t):  # the epsilon our VE denoiser implies at timestep t
        sigma = SCHEDULE.sigmas[t].double()
        x_ve = x_vp / ac[t].sqrt()
        return (x_ve - data(x_ve, sigma.reshape(1))) / sigma

    noise = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    spec, sched = resolve_sampler("DDIM")
    sigmas = get_sigmas(spec, sched, 10, SCHEDULE).double()
    replay_a, replay_b = ReplayNoise(noise), ReplayNoise(noise)
    got = spec.function(lambda x, s: data(x, s), initial_latent(spec, noise, sigmas), sigmas,
                        noise_sampler=replay_a, eta=eta, schedule=SCHEDULE)
    expected = _diffusers_ddim(eps, noise.clone(), 10, eta, lambda: replay_b(None, None))
    assert torch.linalg.norm(got - expected) <= 1e-5 * torch.linalg.norm(expected)


def test_plms_is_exact_for_point_data():
    """With data at one point the exact epsilon makes every step exact: PLMS lands on sqrt(a_1) x0 + ..., the
    VP latent at timestep 1, like DDIM, after steps - 1 model calls (PLMS: one more for its first step)."""
    x0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    model = lambda x, sigma: x0.expand_as(x)
    noise = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    outs = {}
    for name in ("PLMS", "DDIM"):
        spec, sched = resolve_sampler(name)
        sigmas = get_sigmas(spec, sched, 20, SCHEDULE).double()
        calls = []
        counted = lambda x, sigma: calls.append(1) or model(x, sigma)
        outs[name] = run_sampler(spec, counted, initial_latent(spec, noise, sigmas), sigmas, schedule=SCHEDULE)
        assert len(calls) == (20 if name == "PLMS" else 19)
    # the point data is exact for the alphas of the float32 sigmas, 1 / (1 + sigma^2); the samplers step with the
    # model's alphas_cumprod, as A1111's do: the two differ by float32 rounding, a few float32 ulps (1.2e-7
    # each) over the 20 steps (1.7e-7 on an Intel AVX512/AMX CPU, under 1e-7 on the AMD ones)
    torch.testing.assert_close(outs["PLMS"], outs["DDIM"], rtol=5e-7, atol=5e-7)
    ac = K.sd1_alphas_cumprod().double()  # the start is the VP latent at timestep 951, the end the one at 1
    eps = (noise - ac[951].sqrt() * x0) / (1 - ac[951]).sqrt()
    torch.testing.assert_close(outs["DDIM"], ac[1].sqrt() * x0 + (1 - ac[1]).sqrt() * eps, rtol=1e-6, atol=1e-6)


def test_inpainting_unet_gets_its_image_conditioning():
    from sd1kit.sampling.denoisers import unet_model

    unet = tiny_modules(seed=4, in_channels=9).unet.double()
    den = Denoiser(unet_model(unet), SCHEDULE)
    x = torch.randn(1, 4, 8, 8, dtype=torch.float64)
    sigma = torch.tensor([2.0], dtype=torch.float64)
    context = torch.randn(1, 77, 32, dtype=torch.float64)
    image_cond = torch.cat([torch.ones(1, 1, 8, 8), torch.randn(1, 4, 8, 8)], 1).double()
    out = den(x, sigma, context, image_cond)
    c_in = 1 / (sigma ** 2 + 1) ** 0.5
    eps = unet(torch.cat([x * c_in, image_cond], 1), SCHEDULE.sigma_to_t(sigma), encoder_hidden_states=context).sample
    torch.testing.assert_close(out, x - sigma * eps)
    cfg = CFGDenoiser(den, lambda s: [[(context, 1.0)]], lambda s: context, cfg_scale=5.0, image_cond=image_cond)
    torch.testing.assert_close(cfg(x, sigma), out)


def test_restart_below_20_steps_is_heun():
    spec, sched = resolve_sampler("Restart")
    heun, _ = resolve_sampler("Heun")
    sigmas = get_sigmas(spec, sched, 12, SCHEDULE).double()
    data = GaussianData((4, 6, 6))
    x = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * sigmas[0]
    torch.testing.assert_close(spec.function(data, x.clone(), sigmas), heun.function(data, x.clone(), sigmas))


@pytest.mark.parametrize("steps, restarts", [(24, 1), (40, 2)])
def test_restart_schedule_and_exactness(steps, restarts):
    """A1111's plan: 9 (or steps // 4) restart steps, once (or twice from 36 steps); the model-call count
    follows, and with an exact denoiser for point data the sample lands on the point."""
    spec, sched = resolve_sampler("Restart")
    sigmas = get_sigmas(spec, sched, steps, SCHEDULE).double()
    x0 = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls, starts = [], []
    model = lambda x, sigma: calls.append(float(sigma[0])) or x0.expand_as(x)
    rng = ImageRNG((4, 6, 6), [3], source="CPU")
    x = initial_latent(spec, rng.first().double(), sigmas)
    out = run_sampler(spec, model, x, sigmas, rng=rng, callback=lambda i, s, d: starts.append(s))
    restart_steps = 9 if steps < 36 else steps // 4
    main = steps - restart_steps * restarts
    assert len(starts) == main + restart_steps * restarts  # one callback per step
    assert len(calls) == 2 * len(starts) - 1  # Heun: two calls a step but the last
    torch.testing.assert_close(out, x0)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("steps", [4, 10])
def test_unipc_matches_diffusers_unipc(variant, steps):
    """The UniPC solver (order 3, lower order at the end, predictor + corrector) equals diffusers'
    UniPCMultistepScheduler on the same grid (its integer timesteps, ending at timestep 0)."""
    from diffusers import UniPCMultistepScheduler

    data = GaussianData((4, 6, 6))
    ac = K.sd1_alphas_cumprod().double()
    sched = UniPCMultistepScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", solver_order=3,
                                    solver_type=variant, lower_order_final=True, final_sigmas_type="sigma_min")
    sched.alphas_cumprod = ac.float()
    sched.set_timesteps(steps)
    sig = SCHEDULE.sigmas.double()
    sigmas = torch.cat([sig[sched.timesteps], sig[:1]])
    noise = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def eps(x_vp, t):
        x_ve = x_vp / ac[t].sqrt()
        return (x_ve - data(x_ve, sig[t].reshape(1))) / sig[t]

    expected = noise.clone()
    for t in sched.timesteps:
        expected = sched.step(eps(expected, int(t)), t, expected).prev_sample
    spec, _ = resolve_sampler("UniPC")
    got = spec.function(data, initial_latent(spec, noise, sigmas), sigmas, variant=variant)
    assert torch.linalg.norm(got - expected) <= 1e-5 * torch.linalg.norm(expected)


def test_unipc_grid_is_a1111s_time_uniform_grid():
    sigmas = get_sigmas(*resolve_sampler("UniPC"), 10, SCHEDULE)
    assert len(sigmas) == 11
    assert float(sigmas[0]) == pytest.approx(SCHEDULE.sigma_max, rel=1e-6)  # t = 1: timestep 999
    assert float(sigmas[-1]) == pytest.approx(SCHEDULE.sigma_min, rel=1e-6)  # t = 1/1000: timestep 0


def test_unipc_takes_as_many_steps_as_a1111s_timesteps():
    """A1111 runs UniPC for len(DDIM timesteps) steps: 31 for 30 (1000 // 30 = 33 leaves 31 timesteps)."""
    assert len(get_sigmas(*resolve_sampler("UniPC"), 30, SCHEDULE)) == 32
    img2img = resolve_sampler("UniPC")[0].sigma_grid(30, SCHEDULE, 12)
    assert len(img2img) == 13  # t_enc steps from the highest of the t_enc lowest timesteps (364) to timestep 0
    assert float(img2img[0]) == pytest.approx(float(SCHEDULE.sigmas[364]), rel=1e-5)


def test_lcm_sees_the_model_through_lcms_50_timesteps():
    from sd1kit.sampling.lcm import LCMDenoiser

    spec, sched = resolve_sampler("LCM")
    sigmas = get_sigmas(spec, sched, 4, SCHEDULE)
    full = SCHEDULE.sigmas
    assert len(sigmas) == 5 and float(sigmas[-1]) == 0
    assert float(sigmas[0]) == pytest.approx(float(full[999]), rel=1e-5)  # float32 log-sigma interpolation
    assert float(sigmas[-2]) == pytest.approx(float(full[19]), rel=1e-5)
    seen = []

    def raw(x_in, t, context, image_cond):
        seen.append(int(t[0]))
        return torch.zeros_like(x_in)

    den = LCMDenoiser(raw, SCHEDULE)
    x = torch.randn(1, 4, 8, 8)
    out = den(x, sigmas[1:2])
    assert seen[0] % 20 == 19  # a real LCM timestep
    scaled = seen[0] * 10.0
    torch.testing.assert_close(out, x * (scaled / (scaled ** 2 + 0.25) ** 0.5 + 0.25 / (scaled ** 2 + 0.25)))


# --- A1111 1.10 names, DDIM CFG++, LCM over any schedule type, downcast alphas_cumprod ---

A1111_SAMPLERS = ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
                  "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
                  "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"]  # A1111 1.10's all_samplers, in its order


def test_the_sampler_list_is_a1111s():
    assert [s.name for s in SAMPLERS] == A1111_SAMPLERS


@pytest.mark.parametrize("sampler", ["Euler a", "DPM++ 2M", "Euler", "DPM++ 2M SDE Heun", "DDIM CFG++", "LCM"])
def test_a_sampler_name_with_any_schedule_label_or_id_resolves(sampler):
    spec = resolve_sampler(sampler)[0]
    for sched in SCHEDULES[1:]:
        for suffix in (sched.name, sched.id, *sched.aliases):
            assert resolve_sampler(f"{sampler} {suffix}") == (spec, sched), suffix
    assert resolve_sampler(f"{sampler} Automatic") == resolve_sampler(sampler)


def test_a1111_combined_names():
    from sd1kit.sampling.registry import a1111_names

    cases = {"Euler a sgm_uniform": ("Euler a", "SGM Uniform"), "DPM++ 2M kl_optimal": ("DPM++ 2M", "KL Optimal"),
             "Euler align_your_steps": ("Euler", "Align Your Steps"), "Euler a Automatic": ("Euler a", "Uniform"),
             "DDIM CFG++": ("DDIM CFG++", "Uniform"), "ddim_cfgpp": ("DDIM CFG++", "Uniform"),
             "Euler SGM Uniform": ("Euler", "SGM Uniform"), "Euler a DDIM": ("Euler a", "DDIM")}
    assert {n: tuple(x.name for x in resolve_sampler(n)) for n in cases} == cases
    # as in A1111, a schedule in the sampler's name wins over the schedule type beside it
    assert resolve_sampler("DPM++ 2M Karras", "Exponential")[1].name == "Karras"
    assert resolve_sampler("Euler a Automatic", "Karras")[1].name == "Uniform"
    # A1111's own (sampler, schedule type) labels: a sampler's default schedule reads "Automatic"
    assert a1111_names("DPM++ 2M Karras") == ("DPM++ 2M", "Automatic")
    assert a1111_names("Euler a sgm_uniform") == ("Euler a", "SGM Uniform")
    assert a1111_names("Euler a", "Karras") == ("Euler a", "Karras")
    assert a1111_names("DPM++ 2M SDE", "exponential") == ("DPM++ 2M SDE", "Automatic")


class EpsModel:
    """A raw epsilon UNet stand-in whose output depends on x, t and the conditioning (cond rows filled with 1,
    uncond rows with -0.5); it records the timesteps it sees."""

    def __init__(self):
        self.seen = []

    def __call__(self, x_in, t, context, image_cond=None):
        self.seen.extend(t.tolist())
        c = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1).to(x_in.dtype)
        tt = t.to(x_in.dtype).reshape(-1, 1, 1, 1) / 1000
        return 0.3 * torch.tanh(x_in) + c * (0.2 + tt) + 0.05 * x_in * tt


def _a1111_ddim_cfgpp(eps_model, cond, uncond, x, steps, cfg_scale, eta, noise, ac):
    """A1111's ddim_cfgpp (`modules/sd_samplers_timesteps_impl.py`) written out in the VP form on integer
    timesteps: guided epsilon at cfg_scale / 12.5, the uncond epsilon as the direction back to x_t."""
    ts = torch.clip(torch.arange(0, 1000, 1000 // steps) + 1, 0, 999)
    a_all = ac[ts]
    a_prev_all = ac[torch.nn.functional.pad(ts[:-1], (1, 0))].double()
    sqrt_one_minus = (1 - a_all).sqrt()
    sig_all = eta * ((1 - a_prev_all) / (1 - a_all.double()) * (1 - a_all.double() / a_prev_all)).sqrt()
    for i in range(len(ts) - 1):
        index = len(ts) - 1 - i
        t = ts[index].reshape(1).double()
        e_c, e_u = eps_model(x, t, cond), eps_model(x, t, uncond)
        e_t = e_u + (e_c - e_u) * (cfg_scale / 12.5)
        a_t, a_prev, sig = a_all[index].item(), a_prev_all[index].item(), sig_all[index].item()
        pred_x0 = (x - sqrt_one_minus[index].item() * e_t) / a_t ** 0.5
        x = a_prev ** 0.5 * pred_x0 + (1 - a_prev - sig ** 2) ** 0.5 * e_u + sig * noise()
    return x


class LinearCFG:
    """A CFG model without `cfg_scale`: x0-hats of cond and uncond, guided at 7.5, the uncond one exposed."""

    def __init__(self, den, cond, uncond):
        self.den, self.cond, self.uncond, self.last_uncond_denoised = den, cond, uncond, None

    def __call__(self, x, sigma):
        c, u = self.den(x, sigma, self.cond), self.den(x, sigma, self.uncond)
        self.last_uncond_denoised = u
        return u + 7.5 * (c - u)


@pytest.mark.parametrize("eta", [0.0, 0.6])
@pytest.mark.parametrize("kind", ["cfg_denoiser", "linear"])
def test_ddim_cfgpp_is_a1111s_formula(eta, kind):
    raw = EpsModel()
    den = Denoiser(raw, SCHEDULE)
    cond, uncond = torch.ones(1, 77, 8, dtype=torch.float64), torch.full((1, 77, 8), -0.5, dtype=torch.float64)
    model = _cfg(den, cond, uncond, cfg_scale=7.5) if kind == "cfg_denoiser" else LinearCFG(den, cond, uncond)
    noise = torch.randn(1, 4, 6, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    spec, sched = resolve_sampler("DDIM CFG++")
    sigmas = get_sigmas(spec, sched, 12, SCHEDULE).double()
    replay_a, replay_b = ReplayNoise(noise), ReplayNoise(noise)
    got = run_sampler(spec, model, initial_latent(spec, noise, sigmas), sigmas, rng=None, eta=eta, schedule=SCHEDULE) \
        if eta == 0 else spec.function(model, initial_latent(spec, noise, sigmas), sigmas, noise_sampler=replay_a,
                                       eta=eta, schedule=SCHEDULE)
    assert max(abs(t - round(t)) for t in raw.seen) < 1e-4  # A1111's integer timesteps (float64 logs aside)
    expected = _a1111_ddim_cfgpp(raw, cond, uncond, noise.clone(), 12, 7.5, eta, lambda: replay_b(None, None),
                                 SCHEDULE.alphas_cumprod)
    assert torch.linalg.norm(got - expected) <= 1e-9 * torch.linalg.norm(expected)
    if kind == "cfg_denoiser":
        assert model.cfg_scale == 7.5  # scaled for the run only
        ddim = resolve_sampler("DDIM")[0]
        plain = run_sampler(ddim, _cfg(den, cond, uncond, cfg_scale=7.5), initial_latent(ddim, noise, sigmas),
                            sigmas, schedule=SCHEDULE)
        assert torch.linalg.norm(plain - got) > 1e-3 * torch.linalg.norm(got)


def test_ddim_cfgpp_needs_the_uncond_of_a_cfg_denoiser():
    spec, sched = resolve_sampler("DDIM CFG++")
    sigmas = get_sigmas(spec, sched, 4, SCHEDULE)
    with pytest.raises(ValueError, match="last_uncond_denoised"):
        run_sampler(spec, lambda x, s: x * 0, torch.randn(1, 4, 8, 8), sigmas, schedule=SCHEDULE)


class LCMReference:
    """A1111's LCMCompVisDenoiser schedule (`modules/sd_samplers_lcm.py`), written independently: the model's
    alphas_cumprod at timesteps 19, 39, ..., 999, and t <-> sigma through those real timesteps."""

    def __init__(self, ac):
        valid = torch.zeros(50)
        for k in range(50):
            valid[49 - k] = ac[999 - k * 20]
        self.sigmas = ((1 - valid) / valid) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def sigma_to_t(self, sigma):
        return (sigma.log() - self.log_sigmas[:, None]).abs().argmin(dim=0).view(sigma.shape) * 20 + 19

    def t_to_sigma(self, t):
        t = torch.clamp(((t - 19) / 20).float(), min=0, max=49)
        low, high, w = t.floor().long(), t.ceil().long(), t.frac()
        return ((1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]).exp()


def test_lcm_honours_the_schedule_type():
    ref = LCMReference(SCHEDULE.alphas_cumprod)
    lo, hi = float(ref.sigmas[0]), float(ref.sigmas[-1])
    spec = resolve_sampler("LCM")[0]
    sigmas = lambda sched, n=6: get_sigmas(spec, resolve_sampler("LCM", sched)[1], n, SCHEDULE)
    torch.testing.assert_close(sigmas("Karras"), K.get_sigmas_karras(6, lo, hi))
    torch.testing.assert_close(sigmas("Exponential"), K.get_sigmas_exponential(6, lo, hi))
    # A1111's sgm_uniform / simple over the LCM denoiser (`modules/sd_schedulers.py`)
    start, end = ref.sigma_to_t(torch.tensor(hi)), ref.sigma_to_t(torch.tensor(lo))
    sgm = [float(ref.t_to_sigma(t)) for t in torch.linspace(start, end, 7)[:-1]] + [0.0]
    torch.testing.assert_close(sigmas("SGM Uniform"), torch.tensor(sgm), rtol=1e-5, atol=0)
    simple = [float(ref.sigmas[-(1 + int(i * 50 / 6))]) for i in range(6)] + [0.0]
    torch.testing.assert_close(sigmas("Simple"), torch.tensor(simple), rtol=1e-5, atol=0)
    # Automatic = Uniform = LCM's own evenly spaced timesteps
    uniform = torch.cat([ref.t_to_sigma(torch.linspace(999, 19, 6)), torch.zeros(1)])
    torch.testing.assert_close(sigmas("Automatic"), uniform, rtol=1e-5, atol=0)
    torch.testing.assert_close(sigmas("Uniform"), uniform, rtol=1e-5, atol=0)
    assert resolve_sampler("LCM Karras")[1].name == "Karras"


def test_downcast_alphas_cumprod_is_a1111s_float16_schedule():
    plain = K.sd1_alphas_cumprod()
    down = K.sd1_alphas_cumprod(downcast=True)
    assert down.dtype == torch.float16 and torch.equal(down, plain.half())
    ds = K.DiscreteSchedule(down)
    # k-diffusion computes the sigma table in the float16 it is given: old A1111's sigma_min 0.0312 (not 0.0292)
    assert ds.sigma_min == 0.03125 and ds.sigma_max == 14.609375
    torch.testing.assert_close(ds.sigmas, (((1 - down) / down) ** 0.5).float(), rtol=0, atol=0)
    torch.testing.assert_close(ds.log_sigmas, (((1 - down) / down) ** 0.5).log().float(), rtol=0, atol=0)
    assert ds.sigmas.dtype == torch.float32 and ds.alphas_cumprod.dtype == torch.float32
    with pytest.raises(ValueError, match="infinite"):
        K.sd1_alphas_cumprod(zero_terminal_snr=True, downcast=True)


@needs_kd
def test_downcast_schedules_match_k_diffusion_in_float16():
    down = K.sd1_alphas_cumprod(downcast=True)
    ref = KD[1].DiscreteEpsDDPMDenoiser(None, down, quantize=False)
    ours = K.DiscreteSchedule(down)
    torch.testing.assert_close(ours.get_sigmas(10), ref.get_sigmas(10).float(), rtol=0, atol=0)
    probe = torch.tensor([0.5, 1.7, 9.0])
    torch.testing.assert_close(ours.sigma_to_t(probe), ref.sigma_to_t(probe).float(), rtol=1e-6, atol=1e-4)


def test_zero_terminal_snr_is_computed_in_float32_as_a1111():
    ac = K.sd1_alphas_cumprod()
    s = ac.sqrt()
    first, last = s[0].clone(), s[-1].clone()
    s = s - last
    s = s * (first / (first - last))
    expected = s ** 2
    expected[-1] = 4.8973451890853435e-08
    assert torch.equal(K.sd1_alphas_cumprod(zero_terminal_snr=True), expected)


def test_timestep_samplers_see_integer_timesteps_with_downcast_alphas():
    ds = K.DiscreteSchedule(K.sd1_alphas_cumprod(downcast=True))
    raw = EpsModel()
    den = Denoiser(raw, ds)
    model = _cfg(den, torch.ones(1, 77, 8), torch.full((1, 77, 8), -0.5))
    for name in ("DDIM", "DDIM CFG++", "PLMS"):
        raw.seen.clear()
        spec, sched = resolve_sampler(name)
        sigmas = get_sigmas(spec, sched, 10, ds)
        run_sampler(spec, model, initial_latent(spec, torch.randn(1, 4, 8, 8), sigmas), sigmas, schedule=ds)
        ts = sorted({round(t) for t in raw.seen})
        assert max(abs(t - round(t)) for t in raw.seen) < 1e-3, name
        assert ts == [t for t in range(101, 1000, 100)] or name == "PLMS", (name, ts)
