"""`sd1kit serve`: an A1111-compatible HTTP API and a web page."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sd1kit.errors import Sd1kitError
from sd1kit.pipeline.runtime import add_runtime_flags


def _cmd_serve(args) -> int:
    from sd1kit.server.app import ServerConfig, check_bind, create_app
    from sd1kit.server.state import ServerState

    auth = None
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise Sd1kitError("--auth", "expected user:password")
        auth = (user, password)
    check_bind(args.host, auth, args.insecure_no_auth)
    root = Path(args.models_dir) if args.models_dir else Path(os.environ.get("SD1KIT_HOME", ".")) / "models"
    config = ServerConfig(root if root.is_dir() else None, auth, args.queue, args.device or "auto", args.dtype,
                          args.model, args.backend, bool(args.low_memory), bool(args.int8), args.ray, args.replicas)
    if args.ray is not None:
        from sd1kit.batch.on_ray import require_ray

        require_ray()
        if args.replicas < 1:
            raise Sd1kitError("--replicas", "must be at least 1")
    ServerState(config, None).runtime()  # a bad runtime fails here, in one line
    import uvicorn

    print(f"sd1kit serve: http://{args.host}:{args.port}/ (API: /sdapi/v1, docs: /docs)", file=sys.stderr)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="an A1111-compatible HTTP API and a web page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--models-dir", help="A1111-style models folder (default $SD1KIT_HOME/models)")
    p.add_argument("--model", help="the checkpoint to start with (name, title or short hash in the models folder)")
    p.add_argument("--auth", metavar="USER:PASS", help="HTTP basic authentication (required off loopback)")
    p.add_argument("--insecure-no-auth", action="store_true", help="listen off loopback without authentication")
    p.add_argument("--queue", type=int, default=16, help="jobs that may wait (a full queue answers 429)")
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="generate on Ray Serve replicas: auto (this machine's cluster, else a local one) or an address")
    p.add_argument("--replicas", type=int, default=2, help="with --ray: replicas, each holding a model")
    add_runtime_flags(p)
    p.set_defaults(func=_cmd_serve)
