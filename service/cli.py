"""`siteguard serve` and `siteguard admin ...` (users, sites, cameras, API keys, migrations).

Only argparse is imported here; handlers import the service lazily.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the service (API, dashboard, metrics)")
    serve.add_argument("--config", help="service YAML (see configs/service.example.yaml)")
    serve.add_argument("--host", help="override host")
    serve.add_argument("--port", type=int, help="override port")
    serve.add_argument("--data-dir", help="override data_dir")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.set_defaults(handler=_serve)

    admin = subparsers.add_parser("admin", help="service administration (users, sites, keys)")
    admin.add_argument("--config", help="service YAML")
    admin.add_argument("--data-dir", help="override data_dir")
    sub = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)

    p = sub.add_parser("upgrade-db", help="apply database migrations")
    p.set_defaults(handler=_upgrade_db)

    p = sub.add_parser("create-site", help="add a site")
    p.add_argument("site_id", help="short id, e.g. pudong-a (letters, digits, - and _)")
    p.add_argument("--name", help="display name (default: the id), e.g. 浦东工地 A")
    p.set_defaults(handler=_create_site)

    p = sub.add_parser("create-camera", help="add a camera to a site")
    p.add_argument("camera_id", help="id the detector config uses for it, e.g. gate-1")
    p.add_argument("--site", required=True, help="the site it belongs to")
    p.add_argument("--name", help="display name (default: the id)")
    p.add_argument("--require", nargs="+", default=["helmet"], help="required PPE")
    p.set_defaults(handler=_create_camera)

    p = sub.add_parser("create-user", help="add a user (password from --password or prompt)")
    p.add_argument("username", help="login name")
    p.add_argument(
        "--role",
        choices=("viewer", "manager", "trainer", "admin"),
        default="viewer",
        help="viewer: sees; manager: also reviews; trainer: also models and samples; "
        "admin: everything (default viewer)",
    )
    p.add_argument("--sites", nargs="*", default=[], help="site ids the user may see")
    p.add_argument("--password", help="the password (default: asked for on the terminal)")
    p.set_defaults(handler=_create_user)

    p = sub.add_parser("create-api-key", help="a detector key for a site, or a user token")
    p.add_argument("name", help="a name to recognise the key by, e.g. edge-1")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--site", help="detector key bound to this site")
    group.add_argument("--user", help="token acting as this user (e.g. for training)")
    p.set_defaults(handler=_create_api_key)


def _settings(args: argparse.Namespace) -> Any:
    from service.config import ConfigError, load_settings
    from siteguard.cli import CliError

    overrides = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    settings = _settings(args)
    if args.workers > 1:
        # Each worker process builds its own app from the same settings (env + YAML).
        if args.config:
            os.environ["SITEGUARD_SERVICE_CONFIG"] = str(args.config)
        os.environ["SITEGUARD_DATA_DIR"] = str(settings.data_dir)
        os.environ["SITEGUARD_HOST"] = settings.host
        os.environ["SITEGUARD_PORT"] = str(settings.port)
        if settings.upgrade_db_on_start:  # once here, not racing in every worker
            _db(args).dispose()
            os.environ["SITEGUARD_UPGRADE_DB_ON_START"] = "false"
        uvicorn.run(
            "service.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            log_level="info",
            access_log=False,
            proxy_headers=False,  # the app trusts X-Forwarded-For only from trusted_proxies
        )
        return 0
    from service.app import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        proxy_headers=False,  # the app trusts X-Forwarded-For only from trusted_proxies
    )
    return 0


def _db(args: argparse.Namespace) -> Any:
    from service.db import Database

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.db_url)
    db.upgrade()
    return db


def _upgrade_db(args: argparse.Namespace) -> int:
    _db(args).dispose()
    print("database at head")
    return 0


def _create_site(args: argparse.Namespace) -> int:
    from service.models import Site
    from service.schemas import SiteIn
    from siteguard.cli import CliError

    body = _valid(SiteIn, id=args.site_id, name=args.name or args.site_id)
    db = _db(args)
    with db.session() as s, db.writing(s):
        if s.get(Site, body.id) is not None:
            raise CliError(f"site {body.id!r} exists")
        s.add(Site(id=body.id, name=body.name))
        _audit(s, "site.create", site_id=body.id)
    print(json.dumps({"site": body.id}))
    return 0


def _create_camera(args: argparse.Namespace) -> int:
    from service.models import Camera, Site
    from service.schemas import CameraIn
    from siteguard.cli import CliError

    body = _valid(
        CameraIn,
        id=args.camera_id,
        site_id=args.site,
        name=args.name or args.camera_id,
        required_ppe=args.require,
    )
    db = _db(args)
    with db.session() as s, db.writing(s):
        if s.get(Site, body.site_id) is None:
            raise CliError(f"unknown site {body.site_id!r}")
        if s.get(Camera, body.id) is not None:
            raise CliError(f"camera {body.id!r} exists")
        s.add(
            Camera(
                id=body.id,
                site_id=body.site_id,
                name=body.name,
                required_ppe=list(body.required_ppe),
                zones=[],
            )
        )
        _audit(s, "camera.create", site_id=body.site_id, target=body.id)
    print(json.dumps({"camera": body.id, "site": body.site_id}))
    return 0


def _create_user(args: argparse.Namespace) -> int:
    import getpass

    from sqlalchemy import select

    from service.models import Site, User
    from service.schemas import UserIn
    from service.security import hash_password
    from siteguard.cli import CliError

    password = args.password or getpass.getpass(f"password for {args.username}: ")
    body = _valid(
        UserIn, username=args.username, password=password, role=args.role, sites=args.sites
    )
    db = _db(args)
    with db.session() as s, db.writing(s):
        if s.scalar(select(User.id).where(User.username == body.username)):
            raise CliError(f"user {body.username!r} exists")
        sites = list(s.scalars(select(Site).where(Site.id.in_(body.sites))))
        missing = set(body.sites) - {x.id for x in sites}
        if missing:
            raise CliError(f"unknown sites: {', '.join(sorted(missing))}")
        s.add(
            User(
                username=body.username,
                password_hash=hash_password(body.password),
                role=body.role,
                sites=sites,
            )
        )
        _audit(
            s, "user.create", target=body.username, detail={"role": body.role, "sites": body.sites}
        )
    print(json.dumps({"user": body.username, "role": body.role, "sites": body.sites}))
    return 0


def _create_api_key(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from service.models import Site, User
    from service.security import new_api_key
    from siteguard.cli import CliError

    db = _db(args)
    with db.session() as s, db.writing(s):
        if args.site:
            if s.get(Site, args.site) is None:
                raise CliError(f"unknown site {args.site!r}")
            _key, secret = new_api_key(s, args.name, site_id=args.site)
        else:
            user = s.scalar(select(User).where(User.username == args.user))
            if user is None:
                raise CliError(f"unknown user {args.user!r}")
            _key, secret = new_api_key(s, args.name, user_id=user.id)
        _audit(
            s,
            "api_key.create",
            site_id=args.site,
            target=args.name,
            detail={"user": args.user} if args.user else None,
        )
    print(json.dumps({"name": args.name, "key": secret}))
    return 0


def _audit(session: Any, action: str, **fields: Any) -> None:
    """The same audit entry the admin API writes, by `cli:<OS user>` (the CLI has no login)."""
    import getpass

    from service.security import audit

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry / no USER in a container
        who = "unknown"
    detail = {"via": "cli", **(fields.pop("detail", None) or {})}
    audit(session, None, f"cli:{who}"[:100], action, detail=detail, **fields)


def _valid(model: Any, **values: Any) -> Any:
    from pydantic import ValidationError

    from siteguard.cli import CliError

    try:
        return model(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise CliError(problems) from None
