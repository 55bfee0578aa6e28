/* sd1kit's web page: plain JavaScript, no build step, talking only to the server that serves it.
   The generation controls are built from /sd1kit/v1/options-table (an option added there needs no edit here);
   their placeholders are the values the generation plan would choose (a dry run, re-fetched when the model
   changes). Generation goes through the job API (/sd1kit/v1/jobs) so progress and the live preview can be polled. */
'use strict';

const $ = id => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
};

async function api(path, options = {}) {
  const init = { ...options };
  if (init.json !== undefined) {
    init.method = init.method || 'POST';
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(init.json);
    delete init.json;
  }
  const r = await fetch(path, init);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.detail || body.error || `${r.status} ${r.statusText}`);
  return body;
}

const fileToDataURL = f => new Promise((ok, fail) => {
  const r = new FileReader();
  r.onload = () => ok(r.result);
  r.onerror = () => fail(r.error);
  r.readAsDataURL(f);
});
const asDataURL = b64 => (b64.startsWith('data:') ? b64 : 'data:image/png;base64,' + b64);
const sleep = ms => new Promise(ok => setTimeout(ok, ms));
const pretty = attr => attr.replace(/^hr_/, 'hires ').replace(/_/g, ' ').replace(/^./, c => c.toUpperCase());
const norm = s => String(s).trim().toLowerCase().replace(/[\s_-]+/g, '');

function toast(text) {
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 2200);
}

async function copyText(text) {
  try { await navigator.clipboard.writeText(text); } catch (e) {
    const area = el('textarea', { class: 'offscreen' });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
  toast('Copied to the clipboard');
}

/* ---------- what the server lists ---------- */
const S = {
  table: null, samplers: [], schedulers: [], upscalers: [], latentModes: [], styles: [], models: [], vaes: [],
  networks: { lora: [], embeddings: [], hypernetworks: [] }, options: {}, plan: {},
};
// the labels A1111 shows where the infotext key is not a good one (flags, rows the infotext leaves out)
const LABELS = {
  size: 'Size', enable_hr: 'Hires. fix', invert_mask: 'Invert mask (repaint the unpainted area)',
  inpaint_full_res: 'Inpaint only the masked area', zero_terminal_snr: 'Zero terminal SNR',
  per_image: 'Exact batches (each picture alone)', tiled_vae: 'Tiled VAE decode', batch_count: 'Batch count',
  batch_size: 'Batch size', prediction: 'Prediction', seed_resize_from: 'Seed resize from',
  hr_resize: 'Hires resize to', old_prompt_editing: 'Old prompt editing timelines', pad_conds: 'Pad conds',
  pad_conds_v0: 'Pad conds v0', downcast_alphas_cumprod: 'Downcast alphas_cumprod',
};
const NOT_FORM_KEYS = new Set(['Lora hashes', 'TI hashes', 'Version', 'Model hash', 'Model', 'VAE hash', 'VAE',
                               'Hypernet hashes', 'Hashes', 'Prompt', 'Negative prompt']);

/* ---------- the option controls ---------- */
function listFor(attr) {
  if (attr === 'sampler' || attr === 'hr_sampler') return S.samplers;
  if (attr === 'schedule' || attr === 'hr_schedule') return S.schedulers;
  if (attr === 'hr_upscaler') return [...S.latentModes, ...S.upscalers.filter(u => u !== 'None')];
  return null;
}

function shown(value) {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.join('x');
  if (typeof value === 'boolean') return value ? 'on' : 'off';
  return String(value);
}

class Control {
  constructor(prefix, attr, opt, form) {
    this.attr = attr; this.opt = opt; this.form = form;
    const id = `${prefix}-opt-${attr}`;
    const help = opt.help || '';
    const common = { 'data-attr': attr, 'data-infotext': opt.infotext || null, title: help || null };
    this.label = LABELS[attr] || (opt.kind === 'bool' ? pretty(attr) : opt.infotext || pretty(attr));
    const list = listFor(attr);
    if (opt.kind === 'size') {
      const names = attr === 'size' ? ['Width', 'Height'] : [`${this.label} width`, `${this.label} height`];
      this.inputs = [0, 1].map(i => el('input', { ...common, id: `${id}-${i}`, type: 'number', min: attr === 'size' ? 64 : 0,
                                                  max: 8192, step: 8, 'data-part': i, 'aria-label': names[i] }));
      this.node = el('div', { class: 'field size' }, el('span', { class: 'lab', text: this.label }),
                     el('div', { class: 'pair' },
                        el('label', { class: 'sub' }, el('span', { text: attr === 'size' ? 'W' : 'W' }), this.inputs[0]),
                        el('button', { type: 'button', class: 'icon', title: 'Swap width and height',
                                       'aria-label': `Swap ${this.label} width and height`, onclick: () => this.swap() }, '⇄'),
                        el('label', { class: 'sub' }, el('span', { text: 'H' }), this.inputs[1])));
    } else if (opt.kind === 'bool' && opt.default === null) {
      this.input = el('select', { ...common, id },
                      el('option', { value: '', text: 'Default' }), el('option', { value: 'true', text: 'On' }),
                      el('option', { value: 'false', text: 'Off' }));
      this.node = el('label', { class: 'field' }, el('span', { class: 'lab', text: this.label }), this.input);
    } else if (opt.kind === 'bool') {
      this.input = el('input', { ...common, id, type: 'checkbox' });
      this.input.checked = !!opt.default;
      this.node = el('label', { class: 'field check' }, this.input, el('span', { text: this.label }));
    } else if (list || opt.choices) {
      this.input = el('select', { ...common, id }, el('option', { value: '', text: 'Default' }));
      for (const v of list || opt.choices) this.input.add(new Option(v, v));
      this.node = el('label', { class: 'field' }, el('span', { class: 'lab', text: this.label }), this.input);
    } else if (opt.kind === 'str') {
      this.input = el('textarea', { ...common, id, rows: 2 });
      this.node = el('label', { class: 'field wide' }, el('span', { class: 'lab', text: this.label }), this.input);
    } else {
      const [lo, hi] = opt.bounds || [null, null];
      this.input = el('input', { ...common, id, type: 'number', inputmode: opt.kind === 'int' ? 'numeric' : 'decimal',
                                 min: lo, max: hi !== null && hi < 2 ** 53 ? hi : null,
                                 step: opt.kind === 'int' ? 1 : 'any' });
      const field = [el('span', { class: 'lab', text: this.label }), this.input];
      if (attr === 'seed' || attr === 'subseed') {
        this.input.value = '-1';
        field.splice(1, 1, el('div', { class: 'seed' }, this.input,
          el('button', { type: 'button', class: 'icon', title: 'Random seed (-1)', 'aria-label': `Random ${this.label}`,
                         onclick: () => { this.input.value = '-1'; } }, '⚄'),
          el('button', { type: 'button', class: 'icon', title: 'Reuse the seed of the picture shown',
                         'aria-label': `Reuse the ${this.label.toLowerCase()} of the picture shown`,
                         onclick: () => form.recycle(this) }, '♻')));
      }
      this.node = el('label', { class: 'field' }, ...field);
    }
    this.placeholder(opt.default);
  }

  swap() {
    const [a, b] = this.inputs;
    [a.value, b.value] = [b.value, a.value];
    [a.placeholder, b.placeholder] = [b.placeholder, a.placeholder];
  }

  placeholder(value) {  // what the plan would choose when the control is left unset
    this.planned = value;
    if (this.inputs) {
      const pair = Array.isArray(value) ? value : [null, null];
      this.inputs.forEach((input, i) => { input.placeholder = pair[i] === null || pair[i] === undefined ? '' : pair[i]; });
    } else if (this.input.tagName === 'SELECT' && this.input.options[0]?.value === '') {
      const first = this.input.options[0];
      const what = this.attr === 'hr_sampler' ? 'Use same sampler' : this.attr === 'hr_schedule' ? 'Use same scheduler'
        : value === null || value === undefined || value === '' ? 'Default' : `Default (${shown(value)})`;
      first.textContent = what;
    } else if (this.input.type !== 'checkbox') {
      this.input.placeholder = value === null || value === undefined ? '' : shown(value);
    }
  }

  get() {  // the value sent, or null: unset (the plan's default)
    const { kind } = this.opt;
    if (this.inputs) {
      const [w, h] = this.inputs.map(i => i.value.trim());
      if (!w && !h) return null;
      const [pw, ph] = this.inputs.map(i => i.placeholder);
      return [+(w || pw || h), +(h || ph || w)];
    }
    if (this.input.type === 'checkbox') return this.input.checked === !!this.opt.default ? null : this.input.checked;
    const v = this.input.value.trim();
    if (v === '') return null;
    if (kind === 'bool') return v === 'true';
    if (kind === 'int' || kind === 'float') return +v;
    return v;
  }

  clear() {
    if (this.inputs) this.inputs.forEach(i => { i.value = ''; });
    else if (this.input.type === 'checkbox') this.input.checked = !!this.opt.default;
    else this.input.value = this.attr === 'seed' || this.attr === 'subseed' ? '-1' : '';
  }

  setText(text) {  // from an infotext value (A1111's reading)
    const { kind } = this.opt;
    if (this.inputs) {
      const m = String(text).match(/(\d+)\s*x\s*(\d+)/);
      if (m) { this.inputs[0].value = m[1]; this.inputs[1].value = m[2]; }
      return;
    }
    if (this.input.type === 'checkbox') { this.input.checked = norm(text) !== 'false'; return; }
    if (kind === 'bool') { this.input.value = norm(text) === 'false' ? 'false' : 'true'; return; }
    if (this.input.tagName === 'SELECT') {
      const options = [...this.input.options].slice(1);
      const found = options.find(o => o.value === text) || options.find(o => norm(o.value) === norm(text));
      if (found) this.input.value = found.value;
      else { this.input.add(new Option(text, text)); this.input.value = text; }
      return;
    }
    this.input.value = text;
  }
}

/* ---------- a generation tab (txt2img or img2img) ---------- */
class GenTab {
  constructor(section) {
    this.section = section;
    this.kind = section.dataset.kind;
    this.prefix = this.kind === 'txt2img' ? 't2i' : 'i2i';
    this.controls = [];
    this.items = [];
    this.shown = -1;
    this.job = null;
    this.lastPrompt = null;
    this.build();
  }

  id(name) { return `${this.prefix}-${name}`; }
  q(name) { return $(this.id(name)); }

  build() {
    const prompts = el('div', { class: 'prompts panel' },
      el('div', { class: 'prompt-row' },
        el('div', { class: 'prompt-boxes' },
          el('label', { class: 'field' }, el('span', { class: 'lab', text: 'Prompt' }),
             el('textarea', { id: this.id('prompt'), rows: 3, 'data-infotext': 'Prompt',
                              placeholder: 'Prompt (Ctrl+Enter to generate): (word:1.2), [a:b:0.5], <lora:name:0.8>' })),
          el('label', { class: 'field' }, el('span', { class: 'lab', text: 'Negative prompt' }),
             el('textarea', { id: this.id('negative'), rows: 2, 'data-infotext': 'Negative prompt',
                              placeholder: 'Negative prompt' }))),
        el('div', { class: 'gen-buttons' },
          el('button', { id: this.id('generate'), class: 'primary generate', title: 'Generate (Ctrl+Enter)',
                         onclick: () => this.generate() }, 'Generate'),
          el('button', { id: this.id('interrupt'), class: 'secondary', title: 'Interrupt (Esc)', disabled: true,
                         onclick: () => this.interrupt() }, 'Interrupt'))),
      el('div', { class: 'tools' },
        el('button', { type: 'button', id: this.id('networks-toggle'), class: 'chip', 'aria-expanded': 'false',
                       onclick: () => this.toggleNetworks() }, 'Extra networks'),
        el('div', { class: 'styles', id: this.id('styles'), role: 'group', 'aria-label': 'Styles' })),
      el('div', { class: 'networks', id: this.id('networks'), hidden: true }));
    const result = el('div', { class: 'result panel', id: this.id('result') },
      el('div', { class: 'progress', id: this.id('progress'), hidden: true, role: 'progressbar',
                  'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-label': 'Generation progress' },
        el('div', { class: 'bar' }, el('span', { id: this.id('bar') })),
        el('span', { class: 'ptext', id: this.id('ptext') })),
      el('div', { class: 'error', id: this.id('error'), role: 'alert', hidden: true }),
      el('div', { class: 'frame empty', id: this.id('frame') },
        el('img', { id: this.id('preview'), class: 'preview', alt: 'live preview', hidden: true }),
        el('img', { id: this.id('image'), class: 'output', alt: '', hidden: true,
                    onclick: () => openLightbox(this.items, this.shown) }),
        el('span', { class: 'badge', id: this.id('badge'), hidden: true }, 'interrupted'),
        el('span', { class: 'hint' }, 'Pictures appear here')),
      el('div', { class: 'actions', id: this.id('actions'), hidden: true },
        el('a', { class: 'button', id: this.id('save'), download: 'sd1kit.png', title: 'Save the picture' }, 'Save'),
        el('button', { type: 'button', onclick: () => copyText(this.current().infotext) }, 'Copy infotext'),
        ...['txt2img', 'img2img', 'inpaint', 'extras'].map(to => el('button', {
          type: 'button', 'data-send': to, onclick: () => sendPicture(this.current(), to) },
          to === 'extras' ? '→ Extras' : `→ ${to}`))),
      el('div', { class: 'thumbs', id: this.id('gallery') }),
      el('pre', { class: 'infotext', id: this.id('info') }));
    const options = el('div', { class: 'options', id: this.id('options') });
    const parts = [prompts, result, options];
    if (this.kind === 'img2img') parts.splice(2, 0, this.buildInit());
    this.section.append(el('div', { class: 'gen-grid' }, ...parts));
    for (const name of ['prompt', 'negative']) this.q(name).addEventListener('focus', () => { this.lastPrompt = this.q(name); });
    this.buildOptions(options);
    this.buildNetworks();
    this.buildStyles();
  }

  buildOptions(container) {
    const { groups, options } = S.table;
    for (const group of groups) {
      const attrs = group.options.filter(a => options[a] && (options[a].mode === null || options[a].mode === this.kind));
      if (!attrs.length) continue;
      const controls = attrs.map(a => new Control(this.prefix, a, options[a], this));
      this.controls.push(...controls.map(c => Object.assign(c, { group: group.name })));
      const body = el('div', { class: 'grid' }, controls.map(c => c.node));
      const inpaint = /inpaint/i.test(group.name);
      let box;
      if (group.name === 'Generation') {
        box = el('div', { class: 'group open-group' }, body);
      } else {
        const toggle = controls.find(c => c.opt.kind === 'bool' && c.attr.startsWith('enable_'));
        const summary = el('summary', {}, el('span', { text: group.name }));
        if (toggle) { toggle.node.classList.add('in-summary'); summary.append(toggle.node); }
        box = el('details', { class: 'group', open: inpaint || null }, summary, body);
      }
      box.dataset.group = group.name;
      if (inpaint) box.classList.add('inpaint-only');
      container.append(box);
    }
    this.byAttr = Object.fromEntries(this.controls.map(c => [c.attr, c]));
  }

  buildInit() {
    const box = el('div', { class: 'init panel', id: this.id('init') },
      el('div', { class: 'mode', role: 'radiogroup', 'aria-label': 'img2img mode' },
        el('label', {}, el('input', { type: 'radio', name: 'i2i-mode', value: 'img2img', id: this.id('mode-img2img'),
                                      checked: true, onchange: () => this.setMode('img2img') }), 'img2img'),
        el('label', {}, el('input', { type: 'radio', name: 'i2i-mode', value: 'inpaint', id: this.id('mode-inpaint'),
                                      onchange: () => this.setMode('inpaint') }), 'Inpaint (draw a mask)')),
      el('div', { class: 'picker', id: this.id('init-drop') },
        el('label', { class: 'file-button' }, 'Choose the init picture',
           el('input', { type: 'file', accept: 'image/*', id: this.id('init-file'),
                         onchange: e => e.target.files[0] && fileToDataURL(e.target.files[0]).then(u => this.setInit(u)) })),
        el('span', { class: 'muted' }, 'or drop one here'),
        el('div', { class: 'canvas-wrap', id: this.id('canvas-wrap'), hidden: true },
          el('img', { id: this.id('init-img'), alt: 'the init picture' }),
          el('canvas', { id: this.id('canvas'), 'aria-label': 'Mask: paint the area to repaint' }))),
      el('div', { class: 'mask-tools', id: this.id('mask-tools'), hidden: true },
        el('label', { class: 'field inline' }, el('span', { class: 'lab', text: 'Brush' }),
           el('input', { type: 'range', min: 1, max: 128, value: 24, id: this.id('brush'), 'aria-label': 'Brush size' }),
           el('output', { id: this.id('brush-size') }, '24')),
        el('button', { type: 'button', id: this.id('clear'), onclick: () => this.clearMask() }, 'Clear mask')));
    const drop = box.querySelector('.picker');
    drop.addEventListener('dragover', e => { e.preventDefault(); e.stopPropagation(); });
    drop.addEventListener('drop', e => {
      e.preventDefault(); e.stopPropagation();
      hideOverlay();
      const f = e.dataTransfer.files[0];
      if (f) fileToDataURL(f).then(u => this.setInit(u));
    });
    box.querySelector('input[type=range]').addEventListener('input', e => { this.q('brush-size').value = e.target.value; });
    this.mode = 'img2img';
    setTimeout(() => this.setupCanvas(), 0);
    return box;
  }

  setMode(mode) {
    this.mode = mode;
    this.q(`mode-${mode}`).checked = true;
    this.section.classList.toggle('inpainting', mode === 'inpaint');
    this.q('mask-tools').hidden = mode !== 'inpaint' || !this.init;
    this.q('canvas').classList.toggle('active', mode === 'inpaint');
  }

  setInit(url) {
    return new Promise(ok => {
      const img = this.q('init-img');
      img.onload = () => {
        this.init = { url, width: img.naturalWidth, height: img.naturalHeight };
        const canvas = this.q('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        this.painted = false;
        this.q('canvas-wrap').hidden = false;
        this.q('mask-tools').hidden = this.mode !== 'inpaint';
        const size = this.byAttr.size;
        if (size) size.inputs.forEach((input, i) => { input.placeholder = [img.naturalWidth, img.naturalHeight][i]; });
        ok();
      };
      img.src = url;
    });
  }

  setupCanvas() {
    const canvas = this.q('canvas');
    const ctx = canvas.getContext('2d');
    let last = null;
    const at = e => {
      const r = canvas.getBoundingClientRect();
      return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height,
              canvas.width / r.width];
    };
    const draw = e => {
      const [x, y, scale] = at(e);
      ctx.strokeStyle = ctx.fillStyle = '#fff';
      ctx.lineCap = ctx.lineJoin = 'round';
      ctx.lineWidth = +this.q('brush').value * scale;
      ctx.beginPath();
      if (last) { ctx.moveTo(last[0], last[1]); ctx.lineTo(x, y); ctx.stroke(); } else {
        ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
      }
      last = [x, y];
      this.painted = true;
    };
    canvas.addEventListener('pointerdown', e => {
      if (this.mode !== 'inpaint') return;
      canvas.setPointerCapture(e.pointerId); last = null; draw(e); e.preventDefault();
    });
    canvas.addEventListener('pointermove', e => { if (last && this.mode === 'inpaint') draw(e); });
    const end = () => { last = null; };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  clearMask() {
    const canvas = this.q('canvas');
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
    this.painted = false;
  }

  maskDataURL() {  // white where painted, black elsewhere, at the init picture's size
    const src = this.q('canvas');
    const out = document.createElement('canvas');
    out.width = src.width; out.height = src.height;
    const ctx = out.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, out.width, out.height);
    ctx.drawImage(src, 0, 0);
    return out.toDataURL('image/png');
  }

  buildNetworks() {
    const box = this.q('networks');
    const kinds = [['lora', 'LoRA'], ['embeddings', 'Textual inversion'], ['hypernetworks', 'Hypernetworks']];
    const bar = el('div', { class: 'subtabs', role: 'tablist' });
    const filter = el('input', { type: 'search', placeholder: 'Search', 'aria-label': 'Search extra networks' });
    const cards = el('div', { class: 'cards', id: this.id('cards') });
    let active = 'lora';
    const render = () => {
      cards.replaceChildren();
      const words = filter.value.trim().toLowerCase();
      const rows = S.networks[active] || [];
      for (const n of rows.filter(n => !words || n.name.toLowerCase().includes(words))) {
        cards.append(el('button', { type: 'button', class: 'card', title: `Insert ${n.tag}`, 'data-tag': n.tag,
                                    onclick: () => this.insertTag(n.tag) },
          n.preview ? el('img', { src: n.preview, alt: `preview of ${n.name}`, loading: 'lazy' })
                    : el('span', { class: 'noimg' }, n.name.slice(0, 2).toUpperCase()),
          el('span', { class: 'name', text: n.name })));
      }
      if (!cards.children.length) cards.append(el('p', { class: 'muted', text: rows.length ? 'Nothing matches.'
        : `No ${kinds.find(k => k[0] === active)[1]} files in the models folder.` }));
      bar.querySelectorAll('button').forEach(b => b.setAttribute('aria-selected', b.dataset.kind === active));
    };
    for (const [kind, label] of kinds) {
      bar.append(el('button', { type: 'button', role: 'tab', 'data-kind': kind,
                                onclick: () => { active = kind; render(); } },
                    `${label} (${(S.networks[kind] || []).length})`));
    }
    filter.addEventListener('input', render);
    box.append(el('div', { class: 'subbar' }, bar, filter), cards);
    render();
  }

  toggleNetworks() {
    const box = this.q('networks');
    box.hidden = !box.hidden;
    this.q('networks-toggle').setAttribute('aria-expanded', String(!box.hidden));
  }

  insertTag(tag) {
    const area = this.lastPrompt || this.q('prompt');
    const text = area.value;
    area.value = text + (text && !/[\s,]$/.test(text) ? ' ' : '') + tag;
    area.dispatchEvent(new Event('input'));
    toast(`Added ${tag}`);
  }

  buildStyles() {
    const box = this.q('styles');
    if (!S.styles.length) { box.append(el('span', { class: 'muted empty-hint', text: 'Styles: none (styles.csv beside models/)' })); return; }
    box.append(el('span', { class: 'muted', text: 'Styles' }));
    for (const s of S.styles) {
      box.append(el('button', { type: 'button', class: 'chip', 'aria-pressed': 'false', 'data-style': s.name,
                                title: [s.prompt, s.negative_prompt].filter(Boolean).join('\nNegative: '),
                                onclick: e => { const b = e.currentTarget;
                                                b.setAttribute('aria-pressed', String(b.getAttribute('aria-pressed') !== 'true')); } },
                    s.name));
    }
  }

  styles() { return [...this.q('styles').querySelectorAll('[aria-pressed=true]')].map(b => b.dataset.style); }

  applyPlan(settings) {
    for (const c of this.controls) {
      const s = settings[c.attr];
      if (!s) continue;
      c.placeholder(c.attr === 'seed' || c.attr === 'subseed' ? -1 : s.value);
      if (c.attr === 'size' && this.init) c.inputs.forEach((input, i) => { input.placeholder = [this.init.width, this.init.height][i]; });
      c.node.title = [c.opt.help, s.source && s.source !== 'default' ? `default here: ${shown(s.value)} (${s.source})` : '']
        .filter(Boolean).join('\n');
    }
  }

  payload() {
    const payload = { prompt: this.q('prompt').value, negative_prompt: this.q('negative').value, override_settings: {} };
    const styles = this.styles();
    if (styles.length) payload.styles = styles;
    for (const c of this.controls) {
      if (c.group && /inpaint/i.test(c.group) && this.mode !== 'inpaint') continue;
      const value = c.get();
      if (value === null) continue;
      const values = c.opt.kind === 'size' ? value : [value];
      c.opt.api.forEach((name, i) => {
        if (name.startsWith('override_settings.')) payload.override_settings[name.split('.').slice(1).join('.')] = values[i];
        else payload[name] = values[i];
      });
    }
    if (this.kind === 'img2img') {
      if (!this.init) throw new Error('Choose an init picture first (or drop one on the picture area).');
      payload.init_images = [this.init.url];
      if (payload.width === undefined) { payload.width = this.init.width; payload.height = this.init.height; }
      if (this.mode === 'inpaint') {
        if (!this.painted) throw new Error('Paint the area to repaint on the picture (or switch to img2img).');
        payload.mask = this.maskDataURL();
      }
    }
    if (!Object.keys(payload.override_settings).length) delete payload.override_settings;
    return payload;
  }

  displaySize(payload) {  // the output's size, for the frame the preview and the picture are drawn in
    let w = payload.width || +(this.byAttr.size?.inputs[0].placeholder) || 512;
    let h = payload.height || +(this.byAttr.size?.inputs[1].placeholder) || 512;
    if (payload.enable_hr) {
      if (payload.hr_resize_x || payload.hr_resize_y) {
        const [x, y] = [payload.hr_resize_x || 0, payload.hr_resize_y || 0];
        [w, h] = [x || Math.round(y * w / h), y || Math.round(x * h / w)];
      } else {
        const scale = payload.hr_scale || +this.byAttr.hr_scale?.input.placeholder || 2;
        [w, h] = [w * scale, h * scale];
      }
    }
    return [w, h];
  }

  setFrame(w, h) {
    const frame = this.q('frame');
    frame.style.setProperty('--ar', `${w} / ${h}`);
    frame.style.setProperty('--arn', String(w / h));
    frame.classList.remove('empty');
  }

  showError(message) {
    const box = this.q('error');
    box.textContent = message;
    box.hidden = !message;
  }

  setProgress(fraction, text) {
    const bar = this.q('progress');
    bar.hidden = false;
    bar.setAttribute('aria-valuenow', Math.round(fraction * 100));
    this.q('bar').style.width = `${Math.round(fraction * 100)}%`;
    this.q('ptext').textContent = text;
  }

  async generate() {
    if (this.job) return;
    this.showError('');
    let payload;
    try { payload = this.payload(); } catch (e) { this.showError(e.message); return; }
    const [w, h] = this.displaySize(payload);
    this.setFrame(w, h);
    this.setProgress(0, 'Sending…');
    this.q('preview').hidden = true;
    this.q('generate').disabled = true;
    this.section.classList.add('busy');
    const result = this.q('result');
    const r = result.getBoundingClientRect();
    if (r.top < 0 || r.top > innerHeight - 120) result.scrollIntoView({ block: 'start', behavior: 'instant' });
    try {
      const { id } = await api('/sd1kit/v1/jobs', { json: { kind: this.kind, payload } });
      this.job = id;
      this.q('interrupt').disabled = false;
      let started = null;
      let firstStep = null;
      for (;;) {
        const job = await api(`/sd1kit/v1/jobs/${id}`);
        if (job.state === 'queued') this.setProgress(0, 'Queued…');
        else if (job.state === 'running') {
          started = started || performance.now();
          if (job.step > 0 && !firstStep) firstStep = { t: performance.now(), step: job.step };
          let eta = '';
          if (firstStep && job.step > firstStep.step) {
            const per = (performance.now() - firstStep.t) / (job.step - firstStep.step);
            eta = ` · ETA ${Math.max(0, (job.steps - job.step) * per / 1000).toFixed(1)} s`;
          }
          this.setProgress(job.progress, job.steps ? `Step ${job.step}/${job.steps}${eta}` : 'Loading the model…');
          if (job.preview) {
            const pv = this.q('preview');
            pv.src = asDataURL(job.preview);
            pv.hidden = false;
          }
        }
        if (job.state === 'done') {
          this.setProgress(1, job.result && JSON.parse(job.result.info).interrupted ? 'Interrupted' : 'Done');
          this.show(job.result);
          break;
        }
        if (job.state === 'failed' || job.state === 'cancelled') throw new Error(job.error || job.state);
        await sleep(200);
      }
    } catch (e) {
      this.showError(e.message);
      this.q('progress').hidden = true;
    } finally {
      this.job = null;
      this.q('preview').hidden = true;
      this.q('generate').disabled = false;
      this.q('interrupt').disabled = true;
      this.section.classList.remove('busy');
    }
  }

  async interrupt() {
    if (!this.job) return;
    this.q('ptext').textContent = 'Interrupting…';
    try { await api(`/sd1kit/v1/jobs/${this.job}`, { method: 'DELETE' }); } catch (e) { this.showError(e.message); }
  }

  show(result) {
    const info = JSON.parse(result.info);
    const added = result.images.map((b64, i) => ({
      b64, url: asDataURL(b64), infotext: info.infotexts[i] || '', seed: info.all_seeds?.[i],
      subseed: info.all_subseeds?.[i], interrupted: !!info.interrupted, warnings: info.warnings || [],
    }));
    this.items.push(...added);
    this.renderGallery();
    this.select(this.items.length - added.length);
  }

  renderGallery() {
    const gallery = this.q('gallery');
    gallery.replaceChildren(...this.items.map((item, i) => el('button', {
      type: 'button', class: `thumb${item.interrupted ? ' interrupted' : ''}${i === this.shown ? ' selected' : ''}`,
      title: item.interrupted ? 'interrupted' : `seed ${item.seed}`, 'aria-label': `picture ${i + 1}`,
      onclick: () => this.select(i) }, el('img', { src: item.url, alt: '' }))).reverse());
  }

  current() { return this.items[this.shown]; }

  select(i) {
    this.shown = i;
    const item = this.items[i];
    const img = this.q('image');
    img.onload = () => this.setFrame(img.naturalWidth, img.naturalHeight);
    img.src = item.url;
    img.hidden = false;
    img.alt = item.interrupted ? 'the picture (interrupted)' : 'the picture';
    img.classList.toggle('interrupted', item.interrupted);
    this.q('frame').classList.toggle('interrupted', item.interrupted);
    this.q('badge').hidden = !item.interrupted;
    this.q('actions').hidden = false;
    const save = this.q('save');
    save.href = item.url;
    save.download = `sd1kit-${item.seed ?? 'picture'}${item.interrupted ? '-interrupted' : ''}.png`;
    this.q('info').textContent = item.infotext + (item.warnings.length ? `\n\nWarnings: ${item.warnings.join('; ')}` : '');
    this.renderGallery();
  }

  recycle(control) {
    const item = this.current();
    const value = item && (control.attr === 'subseed' ? item.subseed : item.seed);
    if (value === undefined || value === null) { toast('No picture yet'); return; }
    control.input.value = String(value);
  }

  restore(params) {  // every field of a parsed infotext back into the controls (the rest back to unset)
    this.q('prompt').value = params.Prompt || '';
    this.q('negative').value = params['Negative prompt'] || '';
    const keys = { ...params };
    for (const o of Object.values(S.table.options)) {  // an option's other infotext key ("Eta DDIM" for Eta)
      if (o.infotext_alt && o.infotext_alt in keys && !(o.infotext in keys)) keys[o.infotext] = keys[o.infotext_alt];
    }
    const groupOf = {};
    for (const g of S.table.groups) for (const a of g.options) groupOf[a] = g.name;
    const isHires = attr => /hires/i.test(groupOf[attr] || '');
    // an infotext key that other options share ("Denoising strength") says hires only beside a hires-only key
    const shared = new Set(Object.entries(S.table.options).filter(([a]) => !isHires(a)).map(([, o]) => o.infotext));
    const hires = Object.entries(S.table.options).some(([a, o]) => isHires(a) && o.infotext && !shared.has(o.infotext)
                                                                    && o.infotext in keys);
    const opened = new Set();
    for (const c of this.controls) {
      c.clear();
      const key = c.opt.infotext;
      if (isHires(c.attr)) {
        if (!key && c.opt.kind === 'bool') {  // the hires switch: on when the infotext has hires fields
          c.input.checked = hires;
          if (hires) opened.add(c.group);
          continue;
        }
        if (!hires && shared.has(key)) continue;
      }
      if (key && key in keys) {
        c.setText(keys[key]);
        if (c.group !== 'Generation') opened.add(c.group);
      }
    }
    this.section.querySelectorAll('details.group').forEach(d => { if (opened.has(d.dataset.group)) d.open = true; });
    if (this.kind === 'img2img' && ['Mask blur', 'Masked content', 'Inpaint area', 'Mask mode'].some(k => k in params)) this.setMode('inpaint');
    selectModel(params['Model hash'], params.Model);
    if (params.VAE) selectVae(params.VAE);
  }
}

/* ---------- model and VAE (the server's options, as A1111's top bar) ---------- */
async function selectModel(hash, name) {
  const byHash = S.models.filter(x => hash && (x.hash === hash || (x.sha256 || '').startsWith(hash.toLowerCase())));
  const named = x => name && (x.model_name === name || x.title === name);
  const m = byHash.find(named) || byHash[0] || S.models.find(named);  // the hash, then the name among equal files
  if (!m) { if (hash || name) toast(`Model ${name || hash} is not in the models folder`); return; }
  if ($('model').value !== m.title) { $('model').value = m.title; await changeModel(); }
}

function selectVae(name) {
  const found = [...$('vae').options].find(o => o.value === name || o.value.replace(/\.[^.]+$/, '') === name);
  if (found && $('vae').value !== found.value) { $('vae').value = found.value; changeVae(); }
}

async function changeModel() {
  const title = $('model').value;
  $('server-state').textContent = 'loading the model…';
  try {
    await api('/sdapi/v1/options', { json: { sd_model_checkpoint: title } });
    $('server-state').textContent = '';
  } catch (e) { $('server-state').textContent = e.message; }
  refreshPlan();
}

async function changeVae() {
  try { await api('/sdapi/v1/options', { json: { sd_vae: $('vae').value } }); toast(`VAE: ${$('vae').value}`); } catch (e) { toast(e.message); }
}

async function refreshPlan() {  // the defaults the plan would choose for this model, as placeholders
  try {
    const answer = await api('/sdapi/v1/txt2img', { json: { prompt: '', sd1kit_dry_run: true,
      override_settings: { sd_model_checkpoint: $('model').value } } });
    S.plan = answer.plan.settings;
    for (const tab of Object.values(TABS)) tab.applyPlan(S.plan);
    document.body.dataset.plan = $('model').value;
  } catch (e) { $('server-state').textContent = `defaults: ${e.message}`; }
}

/* ---------- tabs ---------- */
const TABS = {};
const loaders = {};
function showTab(name) {
  document.querySelectorAll('.tabs [role=tab]').forEach(b => b.setAttribute('aria-selected', String(b.dataset.tab === name)));
  document.querySelectorAll('main > .tab').forEach(s => { s.hidden = s.id !== `tab-${name}`; });
  document.body.dataset.tab = name;
  if (loaders[name]) { loaders[name](); delete loaders[name]; }
}
const activeTab = () => document.body.dataset.tab;

/* ---------- sending pictures between tabs ---------- */
async function pngInfo(url) {
  return api('/sdapi/v1/png-info', { json: { image: url } });
}

async function sendPicture(item, to) {
  if (!item) return;
  let params = item.params;
  if (!params && to !== 'extras') {
    try { params = (await pngInfo(item.url)).parameters; } catch (e) { toast(e.message); return; }
  }
  await sendTo(to, item.url, params);
}

async function sendTo(to, url, params) {
  if (to === 'extras') { setExtrasPicture(url); showTab('extras'); return; }
  const tab = to === 'txt2img' ? TABS.txt2img : TABS.img2img;
  if (params && (params.Prompt !== undefined || Object.keys(params).length > 2)) tab.restore(params);
  if (to !== 'txt2img') {
    await tab.setInit(url);
    tab.setMode(to === 'inpaint' ? 'inpaint' : 'img2img');
    tab.clearMask();
  }
  showTab(to === 'txt2img' ? 'txt2img' : 'img2img');
}

/* ---------- PNG Info ---------- */
const PNG = { url: null, params: null };
async function readPicture(file) {
  const url = await fileToDataURL(file);
  showTab('pnginfo');
  $('png-picture').src = url;
  $('png-picture').hidden = false;
  PNG.url = url; PNG.params = null;
  $('png-status').textContent = 'Reading…';
  $('png-params').replaceChildren();
  try {
    const info = await pngInfo(url);
    PNG.params = info.info ? info.parameters : null;
    $('png-raw').textContent = info.info || Object.entries(info.items || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
    $('png-status').textContent = info.info ? `Generation data (${info.tool || 'A1111'} format)` : 'No generation data in this picture.';
    const rows = Object.entries(info.info ? info.parameters : {}).filter(([, v]) => v !== null && v !== '');
    $('png-params').replaceChildren(...rows.map(([k, v]) => el('tr', { 'data-key': k }, el('th', { text: k }), el('td', { text: v }))));
    $('png-actions').hidden = false;
    $('png-actions').querySelector('[data-send=txt2img]').disabled = !info.info;
  } catch (e) { $('png-status').textContent = e.message; }
}

/* ---------- Extras ---------- */
function setExtrasPicture(url) {
  $('extras-source').src = url;
  $('extras-source').hidden = false;
  $('extras-source').dataset.url = url;
}

async function runExtras() {
  const url = $('extras-source').dataset.url;
  if (!url) { $('extras-status').textContent = 'Choose a picture first.'; return; }
  $('extras-status').textContent = 'Upscaling…';
  try {
    const r = await api('/sdapi/v1/extra-single-image', { json: {
      image: url, resize_mode: +$('extras-mode').value, upscaling_resize: +$('extras-scale').value,
      upscaling_resize_w: +$('extras-w').value, upscaling_resize_h: +$('extras-h').value,
      upscaling_crop: $('extras-crop').checked, upscaler_1: $('extras-up1').value, upscaler_2: $('extras-up2').value,
      extras_upscaler_2_visibility: +$('extras-vis').value } });
    const out = $('extras-out');
    out.onload = () => {
      $('extras-status').textContent = `${out.naturalWidth}x${out.naturalHeight}`;
      const f = $('extras-frame');
      f.style.setProperty('--ar', `${out.naturalWidth} / ${out.naturalHeight}`);
      f.style.setProperty('--arn', String(out.naturalWidth / out.naturalHeight));
      f.classList.remove('empty');
    };
    out.src = asDataURL(r.image);
    out.hidden = false;
    $('extras-save').href = out.src;
    $('extras-actions').hidden = false;
    $('extras-info').textContent = (r.html_info || '').replace(/<br>/g, '').replace(/<[^>]+>/g, '');
  } catch (e) { $('extras-status').textContent = e.message; }
}

/* ---------- Models ---------- */
async function loadModels() {
  $('models-status').textContent = 'Scanning the models folder…';
  try {
    const { catalog, scan } = await api('/sd1kit/v1/models');
    renderScan(scan);
    renderCatalog(catalog);
    $('models-status').textContent = '';
  } catch (e) { $('models-status').textContent = e.message; }
}

function renderScan(scan) {
  const head = el('tr', {}, ...['File', 'Kind', 'Family', 'Prediction', 'Catalog', 'Hash', 'YAML', ''].map(h => el('th', { text: h })));
  const rows = scan.map(s => {
    const yaml = el('td', {}, s.yaml || '—');
    if (s.yaml === 'needed') {
      yaml.replaceChildren(el('span', { class: 'warn', text: 'needed ' }), el('button', { type: 'button', class: 'small',
        'data-yaml': s.name, onclick: async e => {
          e.currentTarget.disabled = true;
          try { const r = await api('/sd1kit/v1/models/yaml', { json: { name: s.name } }); toast(`yaml ${r.yaml}`); loadModels(); } catch (err) { toast(err.message); }
        } }, 'Write yaml'));
    }
    const m = S.models.find(x => x.hash === s.short_hash || x.title.startsWith(s.name));
    return el('tr', { 'data-name': s.name },
      el('td', { class: 'mono', text: s.name }), el('td', { text: s.kind || '' }), el('td', { text: s.family || '' }),
      el('td', { text: `${s.prediction || ''}${s.prediction_source ? ` (${s.prediction_source})` : ''}` }),
      el('td', { text: s.catalog ? (s.catalog.name || s.catalog.id || String(s.catalog)) : '—' }),
      el('td', { class: 'mono', text: s.short_hash || '' }), yaml,
      el('td', {}, s.problem ? el('span', { class: 'warn', text: s.problem }) : m ? el('button', { type: 'button', class: 'small',
        onclick: () => { $('model').value = m.title; changeModel(); showTab('txt2img'); } }, 'Use') : ''));
  });
  $('scan-table').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  if (!scan.length) $('scan-table').append(el('tr', {}, el('td', { text: 'No checkpoints in the models folder.' })));
}

function renderCatalog(catalog) {
  const ids = new Set(catalog.map(r => r.id));
  const children = {};
  const roots = [];
  for (const r of catalog) {
    const parent = (r.parents || []).find(p => ids.has(p.id));
    if (parent) (children[parent.id] = children[parent.id] || []).push([r, parent.relation]);
    else roots.push([r, null]);
  }
  const node = ([r, relation]) => {
    const s = r.settings || {};
    const facts = [r.kind, r.prediction === 'v' ? 'v-prediction' : null, s.clip_skip > 1 ? `clip skip ${s.clip_skip}` : null,
                   s.cfg_rescale ? `CFG rescale ${s.cfg_rescale}` : null, s.resolution ? s.resolution.join('x') : null]
      .filter(Boolean).join(' · ');
    const others = (r.parents || []).slice(1).map(p => `${p.relation} of ${p.id}`).join(', ');
    return el('li', { 'data-id': r.id, 'data-search': `${r.name} ${r.id} ${(r.aliases || []).join(' ')}`.toLowerCase() },
      el('div', { class: 'node' }, el('strong', { text: r.name }),
         relation ? el('span', { class: 'tag', text: relation }) : null,
         el('span', { class: 'muted', text: ` ${facts}${others ? ` · also ${others}` : ''}` })),
      children[r.id] ? el('ul', {}, ...children[r.id].map(node)) : null);
  };
  $('catalog-tree').replaceChildren(...roots.map(node));
}

function filterCatalog() {
  const words = $('catalog-filter').value.trim().toLowerCase();
  const visit = li => {
    const kids = [...li.querySelectorAll(':scope > ul > li')].map(visit).some(Boolean);
    const hit = !words || li.dataset.search.includes(words) || kids;
    li.hidden = !hit;
    return hit;
  };
  [...$('catalog-tree').children].forEach(visit);
}

/* ---------- Settings ---------- */
const SETTINGS = {};
async function loadSettings() {
  const options = await api('/sdapi/v1/options');
  S.options = options;
  const byApi = {};
  for (const [attr, o] of Object.entries(S.table.options)) for (const name of o.api) if (name.startsWith('override_settings.')) byApi[name.slice(18)] = [attr, o];
  const form = $('settings-form');
  form.replaceChildren();
  for (const [key, value] of Object.entries(options)) {
    if (key === 'sd_model_checkpoint') continue;
    const [attr, o] = byApi[key] || [null, null];
    const label = key === 'sd_vae' ? 'VAE' : o ? (LABELS[attr] || o.infotext || pretty(attr)) : pretty(key);
    let input;
    const choices = key === 'sd_vae' ? [...$('vae').options].map(x => x.value) : o?.choices;
    if (typeof value === 'boolean') input = el('input', { type: 'checkbox', id: `set-${key}` });
    else if (choices) {
      input = el('select', { id: `set-${key}` });
      for (const c of choices) input.add(new Option(c, c));
      if (!choices.some(c => norm(c) === norm(value))) input.add(new Option(value, value));
    } else if (typeof value === 'number') input = el('input', { type: 'number', step: 'any', id: `set-${key}` });
    else input = el('input', { type: 'text', id: `set-${key}` });
    const set = v => {
      if (input.type === 'checkbox') input.checked = !!v;
      else if (input.tagName === 'SELECT') input.value = [...input.options].find(x => norm(x.value) === norm(v))?.value ?? v;
      else input.value = v === null || v === undefined ? '' : v;
    };
    set(value);
    SETTINGS[key] = { input, initial: input.type === 'checkbox' ? input.checked : input.value };
    form.append(el('label', { class: input.type === 'checkbox' ? 'field check' : 'field', title: o?.help || null },
      input.type === 'checkbox' ? input : null, el('span', { class: 'lab' }, label, ' ', el('code', { text: key })),
      input.type === 'checkbox' ? null : input));
  }
}

async function saveSettings() {
  const changed = {};
  for (const [key, { input, initial }] of Object.entries(SETTINGS)) {
    const v = input.type === 'checkbox' ? input.checked : input.value;
    if (v === initial) continue;
    changed[key] = input.type === 'number' ? +v : v;
  }
  if (!Object.keys(changed).length) { $('settings-status').textContent = 'Nothing changed.'; return; }
  try {
    await api('/sdapi/v1/options', { json: changed });
    $('settings-status').textContent = `Applied: ${Object.keys(changed).join(', ')}`;
    if ('sd_vae' in changed) $('vae').value = changed.sd_vae;
    await loadSettings();
    refreshPlan();
  } catch (e) { $('settings-status').textContent = e.message; }
}

/* ---------- lightbox ---------- */
const LB = { items: [], i: 0 };
function openLightbox(items, i) {
  if (!items.length) return;
  LB.items = items; LB.i = i;
  $('lightbox-img').src = items[i].url;
  $('lightbox').hidden = false;
}
function stepLightbox(d) {
  LB.i = (LB.i + d + LB.items.length) % LB.items.length;
  $('lightbox-img').src = LB.items[LB.i].url;
}
const closeLightbox = () => { $('lightbox').hidden = true; };

/* ---------- drag and drop, paste, keys ---------- */
let dragDepth = 0;
function hideOverlay() { dragDepth = 0; $('drop-overlay').hidden = true; }
const hasFiles = e => [...(e.dataTransfer?.types || [])].includes('Files');

function wireGlobal() {
  document.addEventListener('dragenter', e => { if (hasFiles(e)) { dragDepth++; $('drop-overlay').hidden = false; } });
  document.addEventListener('dragleave', () => { if (--dragDepth <= 0) hideOverlay(); });
  document.addEventListener('dragover', e => { if (hasFiles(e)) e.preventDefault(); });
  document.addEventListener('drop', e => {
    e.preventDefault();
    hideOverlay();
    const f = [...(e.dataTransfer?.files || [])].find(x => x.type.startsWith('image/'));
    if (f) readPicture(f);
  });
  document.addEventListener('paste', e => {
    const item = [...(e.clipboardData?.items || [])].find(x => x.kind === 'file' && x.type.startsWith('image/'));
    if (!item) return;
    e.preventDefault();
    readPicture(item.getAsFile());
  });
  document.addEventListener('keydown', e => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      const tab = TABS[activeTab()];
      if (tab) { e.preventDefault(); tab.generate(); } else if (activeTab() === 'extras') { e.preventDefault(); runExtras(); }
    } else if (e.key === 'Escape') {
      if (!$('lightbox').hidden) { closeLightbox(); return; }
      const busy = Object.values(TABS).find(t => t.job);
      if (busy) { e.preventDefault(); busy.interrupt(); }
    } else if (!$('lightbox').hidden && (e.key === 'ArrowLeft' || e.key === 'ArrowRight')) {
      stepLightbox(e.key === 'ArrowLeft' ? -1 : 1);
    }
  });
  $('lightbox').addEventListener('click', e => { if (e.target === $('lightbox') || e.target.classList.contains('lb-close')) closeLightbox(); });
  $('lightbox').querySelector('.lb-prev').addEventListener('click', () => stepLightbox(-1));
  $('lightbox').querySelector('.lb-next').addEventListener('click', () => stepLightbox(1));
  $('lightbox-img').addEventListener('click', closeLightbox);
  document.querySelectorAll('.tabs [role=tab]').forEach(b => b.addEventListener('click', () => showTab(b.dataset.tab)));
  $('png-file').addEventListener('change', e => e.target.files[0] && readPicture(e.target.files[0]));
  $('png-actions').querySelectorAll('[data-send]').forEach(b => b.addEventListener('click', () => sendTo(b.dataset.send, PNG.url, PNG.params)));
  $('extras-file').addEventListener('change', e => e.target.files[0] && fileToDataURL(e.target.files[0]).then(setExtrasPicture));
  $('extras-run').addEventListener('click', runExtras);
  $('extras-mode').addEventListener('change', () => document.querySelectorAll('[data-extras]').forEach(n => { n.hidden = n.dataset.extras !== $('extras-mode').value; }));
  for (const id of ['extras-drop']) {
    $(id).addEventListener('dragover', e => { e.preventDefault(); e.stopPropagation(); });
    $(id).addEventListener('drop', e => {
      e.preventDefault(); e.stopPropagation(); hideOverlay();
      const f = e.dataTransfer.files[0];
      if (f) fileToDataURL(f).then(setExtrasPicture);
    });
  }
  $('model').addEventListener('change', changeModel);
  $('vae').addEventListener('change', changeVae);
  $('catalog-filter').addEventListener('input', filterCatalog);
  $('settings-save').addEventListener('click', saveSettings);
}

/* ---------- start ---------- */
async function start() {
  wireGlobal();
  const safe = (p, fallback) => api(p).catch(() => fallback);
  const [table, models, vaes, samplers, schedulers, upscalers, latent, styles, options, networks] = await Promise.all([
    api('/sd1kit/v1/options-table'), api('/sdapi/v1/sd-models'), safe('/sdapi/v1/sd-vae', []), api('/sdapi/v1/samplers'),
    api('/sdapi/v1/schedulers'), safe('/sdapi/v1/upscalers', []), safe('/sdapi/v1/latent-upscale-modes', []),
    safe('/sdapi/v1/prompt-styles', []), api('/sdapi/v1/options'), safe('/sd1kit/v1/networks', S.networks)]);
  Object.assign(S, { table, models, options, networks, styles, samplers: samplers.map(s => s.name),
                     schedulers: schedulers.map(s => s.label), upscalers: upscalers.map(u => u.name),
                     latentModes: latent.map(l => l.name) });
  for (const m of models) $('model').add(new Option(m.title, m.title, false, m.title === options.sd_model_checkpoint));
  for (const v of ['Automatic', 'None', ...vaes.map(v => v.model_name)]) $('vae').add(new Option(v, v, false, v === options.sd_vae));
  for (const id of ['extras-up1', 'extras-up2']) for (const u of S.upscalers) $(id).add(new Option(u, u));
  $('extras-up1').value = S.upscalers.includes('Lanczos') ? 'Lanczos' : S.upscalers[0];
  for (const section of document.querySelectorAll('main > .gen')) TABS[section.dataset.kind] = new GenTab(section);
  loaders.models = loadModels;
  loaders.settings = () => loadSettings().catch(e => { $('settings-status').textContent = e.message; });
  showTab(location.hash.slice(1) in { txt2img: 1, img2img: 1, extras: 1, pnginfo: 1, models: 1, settings: 1 } ? location.hash.slice(1) : 'txt2img');
  document.body.dataset.ready = 'true';
  await refreshPlan();
}

start().catch(e => {
  document.body.dataset.ready = 'error';
  $('server-state').textContent = `The page could not start: ${e.message}`;
});
