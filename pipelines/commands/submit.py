"""`mmrphys submit`: run any mmrphys command on a Ray cluster as a Ray job."""

from __future__ import annotations

import argparse

from pipelines.submit import DEFAULT_RUNTIME_ENV, SubmitError, load_runtime_env, submit


def register(parser: argparse.ArgumentParser) -> None:
    """Add the submit command's arguments."""
    parser.usage = "mmrphys submit [options] -- COMMAND [ARGS ...]"
    parser.add_argument(
        "--address",
        help="job API of the cluster's head (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, "
        "else http://127.0.0.1:8265, e.g. after `ray dashboard cluster/cluster.yaml`)",
    )
    parser.add_argument(
        "--runtime-env",
        default=str(DEFAULT_RUNTIME_ENV),
        help="runtime env YAML (default: %(default)s; working dir = the current directory)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment variable for the job, e.g. MLFLOW_TRACKING_URI=http://HEAD:5000 (repeatable)",
    )
    parser.add_argument("--job-id", help="submission id (default: one Ray makes up)")
    parser.add_argument("--no-wait", action="store_true", help="return once the job is accepted")
    parser.add_argument("--timeout", type=float, help="stop the job after this many seconds")
    parser.add_argument("job", nargs=argparse.REMAINDER, help="the mmrphys command to run, after `--`")


def run(args: argparse.Namespace) -> int:
    """Submit the job; with waiting, exit 0 only if it succeeded."""
    command = args.job[1:] if args.job[:1] == ["--"] else args.job
    env_vars = dict(_key_value(item) for item in args.env)
    runtime_env = load_runtime_env(args.runtime_env, env_vars)
    outcome = submit(command, address=args.address, runtime_env=runtime_env, job_id=args.job_id,
                     wait=not args.no_wait, timeout_s=args.timeout)
    print(f"job {outcome.job_id}: {outcome.status} (ray job logs --address {outcome.address} {outcome.job_id})")
    return 0 if args.no_wait or outcome.succeeded else 1


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SubmitError(f"--env {item!r}: expected KEY=VALUE")
    return key, value
