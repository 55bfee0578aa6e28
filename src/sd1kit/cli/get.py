"""`sd1kit get` (one file from Hugging Face, Civitai or a URL; or files downloaded elsewhere with --from-dir) and
`sd1kit install` (every file a catalog record needs), verified by sha256 and placed in A1111's folders."""

from __future__ import annotations

from sd1kit.errors import Sd1kitError


def _cmd_get(args) -> int:
    from sd1kit.install.actions import fetch_source, from_dir

    if args.from_dir:
        if args.source:
            raise Sd1kitError("get", "give a SOURCE or --from-dir, not both")
        placed, skipped = from_dir(args.from_dir, args.models_dir)
        for p in placed:
            print(p.line())
        for line in skipped:
            print(f"skipped: {line}")
        return 0 if placed or not skipped else 1
    if not args.source:
        raise Sd1kitError("get", "give a SOURCE (hf:OWNER/REPO/PATH, civitai:MODEL@VERSION, a URL) or --from-dir DIR")
    for p in fetch_source(args.source, to=args.to, name=args.name, sha256=args.sha256, models_dir=args.models_dir,
                          variant=args.variant):
        print(p.line())
    return 0


def _cmd_install(args) -> int:
    from sd1kit.install.actions import install, settings_text

    record, placed = install(args.record, args.variant, args.models_dir)
    print(f"{record.name} [{record.id}]")
    for p in placed:
        print(f"  {p.line()}")
    print(settings_text(record, placed))
    return 0


def add_parser(sub) -> None:
    from sd1kit.install.place import KIND_CHOICES

    p = sub.add_parser("get", help="download a model file (Hugging Face, Civitai, URL), verify its sha256, place it "
                                   "in its A1111 folder")
    p.add_argument("source", nargs="?", help="hf:OWNER/REPO/PATH[@REV], an https://huggingface.co/... URL, "
                                             "civitai:MODEL[@VERSION], https://civitai.com/models/ID?modelVersionId=V, "
                                             "urn:air:sd1:KIND:civitai:MODEL@VERSION, or an https URL")
    p.add_argument("--to", choices=KIND_CHOICES, help="the kind of file, i.e. its folder (default: what the catalog, "
                                                      "the source or the file itself says)")
    p.add_argument("--name", help="the file name to save under (default: the source's)")
    p.add_argument("--sha256", help="the sha256 the file must have (default: the catalog's or the source's)")
    p.add_argument("--variant", choices=("fp16", "fp32"), help="Civitai: the file of this precision")
    p.add_argument("--from-dir", metavar="DIR", help="files downloaded elsewhere: hash each, match the catalog, place "
                                                     "(copied; DIR is left as it is)")
    p.add_argument("--models-dir", help="A1111 models folder (default $SD1KIT_HOME/models)")
    p.set_defaults(func=_cmd_get)
    p = sub.add_parser("install", help="fetch every file a catalog record needs (checkpoint, its yaml, LyCORIS) and "
                                       "print its recommended settings")
    p.add_argument("record", help="a catalog id or name, e.g. easyfluff-hll (sd1kit models lists them)")
    p.add_argument("--variant", choices=("fp16", "fp32"), help="the checkpoint precision to fetch")
    p.add_argument("--models-dir", help="A1111 models folder (default $SD1KIT_HOME/models)")
    p.set_defaults(func=_cmd_install)
