"""`artifacts`: the command line over a store, the same operations as the Python API.

    artifacts init
    artifacts put reviews data/ --type dataset --alias raw -m source=rt
    artifacts ls; artifacts ls reviews; artifacts show reviews:latest
    artifacts get gru:best ./ckpt; artifacts lineage gru:best --format mermaid
    artifacts quota alice --set 10GB

Results go to stdout (``--json`` where a script would parse them), progress bars to stderr (only on a
terminal, only for transfers that take over a second, never with ``--quiet``). A user error is one line,
``error: ...``, on stderr with exit status 1; a malformed command line is exit status 2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__, cli_query
from .cliutil import (
    CliContext,
    CliError,
    Group,
    Progress,
    count,
    file_dicts,
    format_size,
    out,
    parse_duration,
    parse_metadata,
    parse_size,
    print_json,
    quiet_orphan_tasks,
    run_dict,
    run_line,
    table,
    usage_dict,
    usage_line,
    version_dict,
    when,
)
from .errors import ConflictError, NotFoundError
from .names import check_alias, check_name, parse_ref

if TYPE_CHECKING:  # a command imports what it uses, so `--help` and `--version` start fast
    from .store import Store
    from .version import ArtifactVersion

__all__ = ["format_size", "main", "parse_duration", "parse_size"]


pass_ctx = click.make_pass_decorator(CliContext)


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--store",
    "url",
    envvar="ARTIFACTS_STORE",
    default="./.artifacts",
    show_default=True,
    metavar="URL",
    help="Store root: a directory or s3://bucket/prefix [env: ARTIFACTS_STORE].",
)
@click.option(
    "--storage-options",
    envvar="ARTIFACTS_STORAGE_OPTIONS",
    metavar="JSON",
    help="fsspec options for the store's filesystem, a JSON object, e.g. "
    '\'{"client_kwargs": {"endpoint_url": "http://localhost:9000"}}\' [env: ARTIFACTS_STORAGE_OPTIONS].',
)
@click.option(
    "--user",
    envvar="ARTIFACTS_USER",
    help="Act as this user (default: $ARTIFACTS_USER, else the OS login).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars; print only the essentials.")
@click.version_option(__version__, "-V", "--version", prog_name="artifacts")
@click.pass_context
def main(
    ctx: click.Context, url: str, storage_options: str | None, user: str | None, quiet: bool
) -> None:
    """Version datasets, vocabularies and model checkpoints; trace their lineage; restore them.

    REF is NAME (the latest version), NAME:latest, NAME:vN or NAME:ALIAS. Sizes are like 10GB
    (powers of 1000) or 512MiB (powers of 1024).
    """
    quiet_orphan_tasks()
    options: dict[str, Any] = {}
    if storage_options:
        try:
            options = json.loads(storage_options)
        except ValueError as e:
            raise CliError(f"--storage-options is not valid JSON: {e}") from None
        if not isinstance(options, dict):
            raise CliError("--storage-options must be a JSON object")
    ctx.obj = CliContext(url or "./.artifacts", options, user or None, quiet)


# -- create and read ---------------------------------------------------------------------------------
@main.command()
@pass_ctx
def init(c: CliContext) -> None:
    """Create a store at --store.

    Does nothing if a store is already there. The user who creates the store is its first admin
    (admins set quotas and may delete anyone's versions).
    """
    existed = c.exists()
    store = c.store(create=True)
    info = store.info
    if existed:
        out(
            f"store {store.url} already exists (created {when(info['created_at'])} by {info['created_by']})"
        )
    else:
        out(f"created store {store.url} (admin: {info['created_by']})")


def _latest(store: Store, name: str) -> ArtifactVersion | None:
    try:
        return store.artifact(name)
    except NotFoundError:
        return None


@main.command()
@click.argument("name")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "-t",
    "--type",
    "type_",
    metavar="TYPE",
    help="dataset, model, vocabulary, ... (required for a new NAME).",
)
@click.option(
    "-a",
    "--alias",
    "aliases",
    multiple=True,
    metavar="ALIAS",
    help="Alias to point at the new version (repeatable).",
)
@click.option(
    "-m",
    "--metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata; VALUE is parsed as JSON when it can be (repeatable).",
)
@click.option("-d", "--description", default="", help="A free-text description of the version.")
@click.option(
    "-i",
    "--input",
    "inputs",
    multiple=True,
    metavar="REF",
    help="A version this one was made from; records a run for lineage (repeatable).",
)
@click.option(
    "--project",
    default=None,
    help="Record the upload as a run of this project (default 'cli' when --input is given).",
)
@click.option(
    "--safetensors",
    "as_tensors",
    is_flag=True,
    help="Store .safetensors files tensor by tensor (shared with other checkpoints).",
)
@pass_ctx
def put(
    c: CliContext,
    name: str,
    paths: tuple[str, ...],
    type_: str | None,
    aliases: tuple[str, ...],
    metadata: tuple[str, ...],
    description: str,
    inputs: tuple[str, ...],
    project: str | None,
    as_tensors: bool = False,
) -> None:
    """Log files and directories as a new version of NAME.

    A file is stored under its base name, a directory's files under their paths relative to it. Content
    identical to the latest version makes no new version (its aliases are still applied).
    """
    meta = parse_metadata(metadata)
    check_name(name)
    for alias in aliases:
        check_alias(alias)
    if project is not None:
        check_name(project, "project name")
    try:
        store: Store | None = c.store()
    except CliError:  # no store there yet: created (and announced) once the input has been read
        store = None
    before = _latest(store, name) if store is not None else None
    if type_ is None:
        known = {a.name: a.type for a in store.artifacts()} if store is not None else {}
        if name not in known:
            raise CliError(
                f"{name!r} is a new artifact: give its type with --type (e.g. --type dataset)"
            )
        type_ = known[name]
    from .artifact import Artifact

    art = Artifact(name, type_, description=description, metadata=meta)
    for p in paths:  # a missing or special file fails here, before a new store is created
        if os.path.isdir(p):
            art.add_dir(p)
        elif as_tensors and p.endswith(".safetensors"):
            art.add_safetensors(p, prefix="" if len(paths) == 1 else Path(p).stem)
        else:
            art.add_file(p)
    if store is None:
        if inputs:  # a new store has no versions to name as inputs
            raise CliError(f"no store at {c.url} holds {inputs[0]!r}: nothing was created")
        store = c.store(create=True)  # as open_store() does; the new store is announced on stderr
    used = [store.artifact(ref) for ref in inputs]  # a typo fails here, before any run is recorded
    if inputs or project:  # so does every other refusal: a failed put records no run
        check_name(project or "cli", "project name")
        store.precheck(art, aliases)
    with Progress.bar(c.quiet, f"put {name}") as cb:
        if inputs or project:
            with store.start_run(project=project or "cli", job_type="put") as run:
                for input_version in used:
                    run.use_artifact(input_version)
                v = store.log_artifact(art, aliases=aliases, run=run, callback=cb)
        else:
            v = store.log_artifact(art, aliases=aliases, callback=cb)
    if c.quiet:
        out(v.ref)
    elif before is not None and before.version == v.version:
        out(f"{v.ref} unchanged: the same content as the latest version" + _aliases_note(v))
    else:
        out(f"logged {v.ref} ({count(len(art), 'file')}, {format_size(v.size)})" + _aliases_note(v))


def _aliases_note(v: ArtifactVersion) -> str:
    return f"; aliases: {', '.join(v.aliases)}" if v.aliases else ""


def _print_files(v: ArtifactVersion, indent: str = "") -> None:
    rows = []
    for f in v.files():
        extra = " ".join(
            f"{k}={json.dumps(val, separators=(',', ':'))}" for k, val in sorted(f.meta.items())
        )
        rows.append((format_size(f.size), f.path, extra))
    table(("SIZE", "PATH", ""), rows, right=("SIZE",), indent=indent)


@main.command("ls")
@click.argument("name", required=False, metavar="[NAME|REF]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def ls_(c: CliContext, name: str | None, as_json: bool) -> None:
    """List artifacts, the versions of NAME, or the files of REF.

    With no argument: every artifact with its type, live versions, size and last update. With NAME:
    its versions with size, aliases, user and date. With a REF (NAME:vN, NAME:ALIAS): its files.
    """
    store = c.store()
    if name is None:
        arts = store.artifacts()
        if as_json:
            print_json(
                [
                    {
                        "name": a.name,
                        "type": a.type,
                        "versions": a.versions,
                        "size": a.size,
                        "updated_at": a.updated_at,
                    }
                    for a in arts
                ]
            )
            return
        rows = [(a.name, a.type, a.versions, format_size(a.size), when(a.updated_at)) for a in arts]
        table(("NAME", "TYPE", "VERSIONS", "SIZE", "UPDATED"), rows, right=("VERSIONS", "SIZE"))
    elif ":" in name:
        v = store.artifact(name)
        if as_json:
            print_json(file_dicts(v))
        else:
            _print_files(v)
    else:
        versions = store.versions(name)
        last = versions[-1].version if versions else None
        if as_json:
            print_json([version_dict(v, v.version == last) for v in versions])
            return
        rows = [
            (  # type: ignore[misc]
                v.ref,
                format_size(v.size),
                ", ".join((["latest"] if v.version == last else []) + list(v.aliases)),
                v.user,
                when(v.created_at),
            )
            for v in versions
        ]
        table(("VERSION", "SIZE", "ALIASES", "USER", "CREATED"), rows, right=("SIZE",))


@main.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(c: CliContext, ref: str, as_json: bool) -> None:
    """Show a version: metadata, files, producer and consumers (or a run, as run/ID).

    The producer is the run that logged it; consumers are the runs that used it as an input.
    """
    if ref.startswith("run/"):
        click.get_current_context().invoke(run, run_id=ref[4:], as_json=as_json)
        return
    store = c.store()
    v = store.artifact(ref)
    latest = store.artifact(v.name).version == v.version
    producer, consumers = v.produced_by(), v.consumed_by()
    if as_json:
        print_json(
            {
                **version_dict(v, latest),
                "files": file_dicts(v),
                "produced_by": producer.id if producer else None,
                "consumed_by": [r.id for r in consumers],
            }
        )
        return
    files = v.files()
    out(f"{v.ref} ({v.type})")
    fields = [
        ("aliases", ", ".join((["latest"] if latest else []) + list(v.aliases)) or "-"),
        ("size", f"{format_size(v.size)} in {count(len(files), 'file')}"),
        ("digest", v.digest),
        ("created", f"{when(v.created_at)} by {v.user}"),
        ("description", v.description or None),
        ("metadata", json.dumps(dict(v.metadata), sort_keys=True) if v.metadata else None),
        ("produced by", run_line(producer) if producer else "- (logged outside a run)"),
    ]
    for key, value in fields:
        if value is not None:
            out(f"  {key + ':':13} {value}")
    for i, r in enumerate(consumers):
        out(f"  {'consumed by:' if i == 0 else '':13} {run_line(r)}")
    out("files:")
    _print_files(v, indent="  ")


@main.command()
@click.argument("ref")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.option(
    "-f", "--force", is_flag=True, help="Write into a non-empty DEST (overwriting its files)."
)
@click.option(
    "--as",
    "fmt",
    type=click.Choice(["files", "safetensors"]),
    default="files",
    show_default=True,
    help="files: the version's files; safetensors: its tensors as one .safetensors file.",
)
@click.option(
    "--link",
    is_flag=True,
    help="Hard-link (or reflink) files from a local store or the cache instead of copying; "
    "linked files are read-only. Falls back to copies across filesystems.",
)
@pass_ctx
def get(
    c: CliContext, ref: str, dest: Path | None, force: bool, fmt: str = "files", link: bool = False
) -> None:
    """Download a version into DEST, verified.

    DEST defaults to ./NAME-vN (./NAME-vN.safetensors with --as safetensors). It must be empty or
    missing unless --force. Nothing is ever written outside DEST: a manifest path that would leave it
    (through '..' or a symlink inside DEST) stops the download before any write. A killed get leaves
    no partial file under a final name, and a rerun cleans up after it.
    """
    store = c.store()
    v = store.artifact(ref)
    if fmt == "safetensors":
        target = dest if dest is not None else Path(f"{v.name}-v{v.version}.safetensors")
        if target.is_dir() or (target.exists() and not force):
            raise CliError(f"{target} exists: choose another DEST or pass --force")
        with Progress.bar(c.quiet, f"get {v.ref}") as cb:
            v.save_safetensors(target, callback=cb)
        out(
            str(target)
            if c.quiet
            else f"{v.ref} -> {target} ({format_size(target.stat().st_size)})"
        )
        return
    dest = dest if dest is not None else Path(f"{v.name}-v{v.version}")
    if dest.exists() and not dest.is_dir():  # a usage error, as click reports a bad path
        raise click.BadParameter(f"directory {str(dest)!r} is a file.", param_hint="'DEST'")
    with Progress.bar(c.quiet, f"get {v.ref}") as cb:
        if cb is not None:
            cb.set_size(v.size)
        try:
            written = v.download(dest, force=force, callback=cb, link=link)
        except ConflictError:
            raise CliError(
                f"{dest} exists and is not empty: choose another DEST or pass --force"
            ) from None
    if c.quiet:
        out(str(written))
    else:
        out(f"{v.ref} -> {written} ({count(v.file_count(), 'file')}, {format_size(v.size)})")


@main.command()
@click.argument("ref")
@click.argument("path")
@pass_ctx
def cat(c: CliContext, ref: str, path: str) -> None:
    """Write one file of a version to stdout.

    The bytes are verified as they stream: corruption is an error (exit 1) at the end.
    """
    v = c.store().artifact(ref)
    stdout = sys.stdout.buffer  # (click's get_binary_stream is deprecated from click 8.5)
    with v.open(path) as f:
        shutil.copyfileobj(f, stdout, 1 << 20)
    stdout.flush()


# -- change ------------------------------------------------------------------------------------------
@main.command()
@click.argument("ref")
@click.argument("alias", required=False)
@click.option(
    "--rm", "remove", is_flag=True, help="Remove the alias REF (written NAME:ALIAS) instead."
)
@pass_ctx
def alias(c: CliContext, ref: str, alias: str | None, remove: bool) -> None:
    """Set or remove an alias.

    `alias REF ALIAS` points ALIAS at the version REF resolves to, moving it from any other version;
    `alias --rm NAME:ALIAS` removes it.

    \b
      artifacts alias gru:v3 best      gru:best is now gru:v3
      artifacts alias --rm gru:best    gru has no 'best' any more
    """
    if remove:
        if alias is not None:
            raise click.UsageError(
                "with --rm, give only NAME:ALIAS (e.g. `artifacts alias --rm gru:best`)"
            )
        r = parse_ref(ref)
        if r.alias is None:
            raise click.UsageError(f"--rm needs NAME:ALIAS, e.g. gru:best; {ref!r} names no alias")
        c.store().remove_alias(r.name, r.alias)
        out(f"removed alias {r.name}:{r.alias}")
        return
    if alias is None:
        raise click.UsageError("missing ALIAS: `artifacts alias REF ALIAS` (or `--rm NAME:ALIAS`)")
    v = c.store().set_alias(ref, alias)
    out(f"{v.name}:{alias} -> {v.ref}")


@main.command()
@click.argument("ref")
@pass_ctx
def rm(c: CliContext, ref: str) -> None:
    """Delete one version (NAME:vN or NAME:ALIAS).

    Its bytes are freed by the next `gc` unless another version shares them. Version numbers are never reused. Only the version's creator or a store admin may delete it.
    """
    if ":" not in ref:
        raise CliError(
            f"rm needs a version, e.g. {ref}:v0 or {ref}:latest, not just the name {ref!r}"
        )
    store = c.store()
    v = store.artifact(ref)
    store.delete_version(v.ref)
    out(f"deleted {v.ref} ({format_size(v.size)}; run `artifacts gc` to free unshared bytes)")


# -- runs and lineage ----------------------------------------------------------------------------------
@main.command()
@click.argument("run_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--follow", is_flag=True, help="Print history rows (JSON lines) as they arrive, until it ends."
)
@click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, help="--follow: seconds.")
@click.option(
    "--mark",
    type=click.Choice(["crashed", "failed", "killed", "finished"]),
    help="Close a run that cannot finish itself (its process died), keeping its history.",
)
@click.option("--force", is_flag=True, help="--mark: even if the run sent a heartbeat recently.")
@pass_ctx
def run(
    c: CliContext,
    run_id: str,
    as_json: bool,
    follow: bool,
    poll: float,
    mark: str | None,
    force: bool,
) -> None:
    """Show one run: config, summary metrics, inputs and outputs (ID may be a unique prefix).

    A run whose process died reads `crashed` once its heartbeat is older than $ARTIFACTS_CRASH_TIMEOUT
    seconds (default 300); `--mark crashed` records that for good.
    """
    if follow:
        from .follow import follow_rows

        for row in follow_rows(c.store(), run_id, poll):
            out(json.dumps(row, sort_keys=True))
        click.echo(f"run {run_id} is {c.store().run(run_id).status}", err=True)
        return
    if mark is not None:
        closed = c.store().close_run(run_id, mark, force=force)
        out(f"marked run {closed.id} {closed.status} ({len(closed.history())} history rows kept)")
        return
    r = c.store().run(run_id)
    d = run_dict(r, full=True)
    if as_json:
        print_json(d)
        return
    out(f"run {r.id} ({r.job_type or 'run'}{' ' + r.name if r.name else ''}, project {r.project})")
    for key, value in [
        ("status", r.status),
        ("user", f"{r.user}@{r.host}" if r.host else r.user),
        ("group", r.group),
        ("tags", ", ".join(r.tags)),
        ("notes", r.notes),
        ("started", when(r.started_at)),
        ("finished", when(r.finished_at) if r.finished_at else None),
        ("command", " ".join(r.command) if r.command else None),
        ("git", r.git),
    ]:
        if value:
            out(f"  {key + ':':10} {value}")
    for title in ("config", "summary"):
        out(f"{title}:" + ("" if d[title] else " -"))
        for k, val in sorted(d[title].items()):
            out(f"  {k}: {json.dumps(val)}")
    for title in ("inputs", "outputs"):
        out(f"{title}:" + ("" if d[title] else " -"))
        for ref in d[title]:
            out(f"  {ref}")


@main.command()
@click.argument("ref")
@click.option(
    "--up", "direction", flag_value="upstream", default=True, help="What made REF (default)."
)
@click.option("--down", "direction", flag_value="downstream", help="What was made from REF.")
@click.option("--both", "direction", flag_value="both", help="Both directions.")
@click.option(
    "--depth", type=click.IntRange(min=0), help="At most N levels (a level is a run and a version)."
)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["tree", "dot", "mermaid", "json"]),
    default="tree",
    show_default=True,
    help="tree: indented text; dot: Graphviz; mermaid: a Markdown diagram; json: nodes and edges.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@pass_ctx
def lineage(
    c: CliContext, ref: str, direction: str, depth: int | None, fmt: str, as_json: bool
) -> None:
    """Show what made REF, or what was made from it.

    REF is a version or run/ID. Upstream walks from a version to the run that produced it, to the
    versions that run consumed, and so on; downstream the other way.
    """
    g = c.store().lineage(ref, direction=direction, depth=depth)
    if as_json or fmt == "json":
        print_json(g.to_dict())
    elif fmt == "dot":
        click.echo(g.to_dot(), nl=False)
    elif fmt == "mermaid":
        click.echo(g.to_mermaid(), nl=False)
    elif direction == "both":  # the upstream tree, then the downstream branches under the same root
        store = c.store()
        up = store.lineage(ref, direction="upstream", depth=depth).to_tree()
        down = store.lineage(ref, direction="downstream", depth=depth).to_tree()
        click.echo(up + "".join(down.splitlines(keepends=True)[1:]), nl=False)
    else:
        click.echo(g.to_tree(), nl=False)


# -- quotas and maintenance --------------------------------------------------------------------------
@main.command()
@click.argument("user", required=False)
@click.option(
    "--set",
    "size",
    metavar="SIZE",
    help="Set USER's quota: 10GB, 512MiB, ... or 'none' to remove it (admins only).",
)
@pass_ctx
def quota(c: CliContext, user: str | None, size: str | None) -> None:
    """Show or set USER's quota (default: you).

    Usage counts the distinct blobs of the live versions USER created. Only admins may --set.
    """
    store = c.store()
    user = user or store.user
    if size is not None:
        store.set_quota(user, parse_size(size))
    out(usage_line(usage_dict(store, user)))


@main.command()
@click.argument("user", required=False)
@pass_ctx
def admin(c: CliContext, user: str | None) -> None:
    """List the store admins, or make USER one (admins only).

    Admins may set quotas and delete other users' versions; the store's creator is the first.
    """
    store = c.store()
    if user is not None:
        store.add_admin(user)
    out("admins: " + ", ".join(store.admins()))


@main.command()
@click.argument("user", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def usage(c: CliContext, user: str | None, as_json: bool) -> None:
    """Show the bytes USER uses (default: you).

    That is the total size of the distinct blobs referenced by the live versions USER created.
    """
    store = c.store()
    d = usage_dict(store, user or store.user)
    if as_json:
        print_json(d)
    else:
        out(usage_line(d))


@main.command()
@click.argument("ref", required=False)
@click.option(
    "--quick", is_flag=True, help="Check that blobs exist with the right size; do not re-hash."
)
@click.option(
    "--snapshots", is_flag=True, help="Also compare each index snapshot with a replay of the log."
)
@pass_ctx
def verify(c: CliContext, ref: str | None, quick: bool, snapshots: bool) -> None:
    """Check the store, or one version.

    Every log entry must be present and readable and every blob intact (re-hashed unless --quick).
    Problems are listed on stdout, one per line; the exit status is 1 if there is any.
    """
    report = c.store().verify(ref, quick=quick, snapshots=snapshots)
    for p in report.problems:
        out(p)
    what = f"{report.blobs_checked} blobs" + (
        f" and {report.entries_checked} log entries" if ref is None else ""
    )
    if not report.ok:
        raise CliError(f"{count(len(report.problems), 'problem')} found (checked {what})")
    out(f"ok: checked {what}" + (" (quick)" if quick else ""))


@main.command()
@click.option("-n", "--dry-run", is_flag=True, help="Only report what would be deleted.")
@click.option(
    "--grace",
    default="24h",
    show_default=True,
    metavar="DURATION",
    help="Keep unreferenced blobs younger than this (24h, 30m, 0).",
)
@pass_ctx
def gc(c: CliContext, dry_run: bool, grace: str) -> None:
    """Delete blobs that nothing refers to any more.

    That is blobs of deleted versions (see `rm`) and leftovers of interrupted uploads and commits
    (S3 multipart uploads a dead endpoint kept from being aborted, temp files of killed commits),
    once older than the grace period (which protects uploads in progress).
    """
    report = c.store().gc(parse_duration(grace), dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    line = f"{verb} {count(len(report.deleted), 'blob')} ({format_size(report.bytes_freed)}), kept {report.kept}"
    if report.spared:
        line += f", spared {len(report.spared)} reused while collecting"
    if report.uploads_aborted:
        verb = "would abort" if dry_run else "aborted"
        line += f"; {verb} {count(report.uploads_aborted, 'unfinished upload')}"
    if report.temp_removed:
        verb = "would remove" if dry_run else "removed"
        line += f"; {verb} {count(report.temp_removed, 'temp file')} of killed commits"
    if report.packs_repaired:
        verb = "would repair" if dry_run else "repaired"
        line += f"; {verb} {count(len(report.packs_repaired), 'damaged log pack')}"
    if report.packs_dropped:
        verb = "would remove" if dry_run else "removed"
        line += f"; {verb} {count(len(report.packs_dropped), 'log pack')} a larger pack covers"
    out(line)


@main.command()
@pass_ctx
def reindex(c: CliContext) -> None:
    """Rebuild the local index from the store's log.

    The index (SQLite, in the per-user cache) is only a cache of the log; this never loses anything.
    """
    store = c.store()
    replayed = store.reindex()
    out(f"rebuilt the index of {store.url} from {count(replayed, 'log entry', 'log entries')}")


cli_query.register(main)  # runs, compute, history, compare, diff
for _module in ("cli_transfer", "cli_ui"):  # sync, cache; ui, report
    for _command in __import__(f"artifacts.{_module}", fromlist=["COMMANDS"]).COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main(prog_name="artifacts")
