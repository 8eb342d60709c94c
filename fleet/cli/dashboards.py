"""`fleet dashboards build` and `fleet dashboards push`: the Grafana dashboards as code."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.cli.args import sub, subcommands
from fleet.errors import ConfigError

EXIT_OK = 0
TOKEN_ENV = "FLEET_GRAFANA_TOKEN"  # noqa: S105 (the variable's name, not a token)
DEFAULT_DIR = Path("dashboards")
DEFAULT_FOLDER = "fleet"
BUILD_EXAMPLE = """examples:
  fleet dashboards build                  # (re)write dashboards/*.json and dashboards/provisioning/
  fleet dashboards build -o /var/lib/grafana/dashboards/fleet

Generated from fleet's metric catalogue with grafana-foundation-sdk: sorted, stable JSON
(regenerating changes nothing unless fleet changed). See dashboards/README.md.
"""
PUSH_EXAMPLE = f"""examples:
  {TOKEN_ENV}=glsa_... fleet dashboards push --url https://grafana.example.com
  fleet dashboards push --url http://127.0.0.1:3000 --token-file ~/.config/fleet/grafana.token \\
      --folder "fleet (lab)" --datasource-uid fleet-prometheus

The token (a Grafana service-account token, role Editor) comes from ${TOKEN_ENV} or from
--token-file, never from the command line, and is never printed. Creates the folder if missing,
sets the dashboards' data source (--datasource-uid), overwrites them, and says per dashboard
whether it was created, updated or unchanged.
"""


def register(subparsers: Any) -> None:
    group = sub(subparsers, "dashboards", "Grafana dashboards generated from the metric catalogue",
                 BUILD_EXAMPLE)
    group_sub = subcommands(group, "dashboards commands")
    build = sub(group_sub, "build", "write the dashboards' JSON and Grafana provisioning files",
                 BUILD_EXAMPLE)
    build.add_argument("-o", "--output", type=Path, default=DEFAULT_DIR, metavar="DIR",
                       help="directory to write into (default: %(default)s)")
    build.set_defaults(handler=cmd_dashboards_build)
    push_help = "create or update the dashboards in a Grafana"
    # no abbreviations: `--token X` must not be taken for `--token-file X` (and echoed)
    push = group_sub.add_parser("push", help=push_help, description=push_help,
                                epilog=PUSH_EXAMPLE, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    push.add_argument("--url", required=True, metavar="URL",
                      help="Grafana's base URL, e.g. http://127.0.0.1:3000")
    push.add_argument("--folder", default=DEFAULT_FOLDER, metavar="NAME",
                      help="folder to put them in, created if missing (default: %(default)s)")
    push.add_argument("--datasource-uid", default=None, metavar="UID",
                      help="the Prometheus data source the dashboards select (default: "
                           "Grafana's default Prometheus data source)")
    push.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                      help=f"file holding the API token (default: ${TOKEN_ENV})")
    push.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                      help="per-request timeout (default: %(default)s)")
    push.set_defaults(handler=cmd_dashboards_push)


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_dashboards_build(args: argparse.Namespace) -> int:
    from fleet.export.grafana.build import generated_files

    files = generated_files()  # everything rendered before anything is written
    changed = []
    for rel, text in files.items():
        path = args.output / rel
        try:
            if path.exists() and path.read_text() == text:
                continue
            _write_atomically(path, text)
        except OSError as exc:
            raise ConfigError(f"cannot write {rel}: {exc.strerror or exc}", where=str(path),
                              hint="pick a writable directory with -o DIR") from None
        changed.append(rel)
    for rel in changed:
        sys.stdout.write(f"wrote {args.output / rel}\n")
    sys.stdout.write(f"{len(files)} file(s) in {args.output}: {len(changed)} changed, "
                     f"{len(files) - len(changed)} unchanged\n")
    return EXIT_OK


def read_token(token_file: Path | None, environ: Mapping[str, str]) -> str:
    """The API token from --token-file, else $FLEET_GRAFANA_TOKEN; never echoed."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file: {exc.strerror or exc}",
                              where=str(token_file), hint="give a readable file") from None
        if not token:
            raise ConfigError("the token file is empty", where=str(token_file),
                              hint="put the Grafana service-account token in it")
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError("no Grafana API token", where="fleet dashboards push",
                          hint=f"set ${TOKEN_ENV} or pass --token-file FILE")
    return token


def cmd_dashboards_push(args: argparse.Namespace) -> int:
    from fleet.export.grafana.build import dashboard_models
    from fleet.export.grafana.push import push_dashboards

    if not args.url.startswith(("http://", "https://")):
        raise ConfigError(f"--url {args.url!r} is not an http(s) URL",
                          where="fleet dashboards push", hint="e.g. --url http://127.0.0.1:3000")
    token = read_token(args.token_file, os.environ)
    models = dashboard_models(args.datasource_uid)
    report = push_dashboards(args.url, token, models, folder=args.folder,
                             timeout_seconds=args.timeout)
    made = "created" if report.folder_created else "exists"
    sys.stdout.write(f"folder {report.folder_title!r} (uid {report.folder_uid}): {made}\n")
    for d in report.dashboards:
        sys.stdout.write(f"{d.change:9} {d.uid}  {d.title}\n")
    counts = {c: sum(1 for d in report.dashboards if d.change == c)
              for c in ("created", "updated", "unchanged")}
    sys.stdout.write(f"{len(report.dashboards)} dashboard(s) pushed to {args.url}: "
                     + ", ".join(f"{n} {c}" for c, n in counts.items()) + "\n")
    return EXIT_OK
