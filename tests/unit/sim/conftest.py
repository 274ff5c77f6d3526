# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the simulated API server tests: certificates made with the openssl CLI,
the server as a subprocess on 127.0.0.1, a kubeconfig, and the real kubectl/helm."""
from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SIM = os.path.join(ROOT, "tests", "sim")
if SIM not in sys.path:
    sys.path.insert(0, SIM)

# The ansible-core matrix (scripts/test.sh matrix) runs the unit tests again on the lowest
# and the highest ansible-core the collection admits. The simulation's own tests that neither
# import Ansible nor run it test the same code on every core, so the matrix leaves them out.
if os.environ.get("KUBEGPU_MATRIX_CORE"):
    _HERE = os.path.dirname(os.path.abspath(__file__))
    collect_ignore = sorted(name for name in os.listdir(_HERE) if name.startswith("test_") and name.endswith(".py")
                            and "ansible" not in open(os.path.join(_HERE, name), encoding="utf-8").read())


def _schemas_dir():
    import glob
    found = glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "kubernetes_validate",
                                   "kubernetes-json-schema", "v1.35.0-local-strict"))
    if not found:
        try:
            import kubernetes_validate
            found = [os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema",
                                  "v1.35.0-local-strict")]
        except ImportError:
            return None
    return found[0] if found and os.path.isdir(found[0]) else None


def _binary(env, name):
    path = os.environ.get(env) or os.path.join(ROOT, ".cache", "helm", name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(directory):
    """CA, apiserver serving cert (SAN 127.0.0.1), admin client cert and a stranger CA."""
    os.makedirs(directory, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=kubernetes", cwd=directory)
    with open(os.path.join(directory, "san.ext"), "w") as stream:
        stream.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=directory)
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "apiserver.crt", "-days", "2", "-extfile", "san.ext", cwd=directory)
    with open(os.path.join(directory, "client.ext"), "w") as stream:
        stream.write("extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "admin.key", "-out", "admin.csr",
             "-subj", "/O=kubeadm:cluster-admins/CN=kubernetes-admin", cwd=directory)
    _openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "admin.crt", "-days", "2", "-extfile", "client.ext", cwd=directory)


def _b64file(path):
    with open(path, "rb") as stream:
        return base64.b64encode(stream.read()).decode()


def write_kubeconfig(path, server, certs, user=None):
    """A kubeconfig like kubeadm's admin.conf; user: dict of kubeconfig user fields."""
    user = user or {"client-certificate-data": _b64file(os.path.join(certs, "admin.crt")),
                    "client-key-data": _b64file(os.path.join(certs, "admin.key"))}
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: sim", "  cluster:",
             "    server: %s" % server, "    certificate-authority-data: %s" % _b64file(os.path.join(certs, "ca.crt")),
             "contexts:", "- name: sim", "  context: {cluster: sim, user: admin}", "current-context: sim",
             "users:", "- name: admin", "  user:"]
    lines += ["    %s: %s" % (k, v) for k, v in user.items()] or ["    {}"]
    with open(path, "w") as stream:
        stream.write("\n".join(lines) + "\n")
    return path


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """A running simulated API server and the helpers the tests use."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.certs = os.path.join(self.workdir, "pki")
        self.data = os.path.join(self.workdir, "data")
        self.home = os.path.join(self.workdir, "home")
        os.makedirs(self.home, exist_ok=True)
        make_certs(self.certs)
        self.port = _free_port()
        self.server = "https://127.0.0.1:%d" % self.port
        self.kubeconfig = write_kubeconfig(os.path.join(self.workdir, "admin.conf"), self.server, self.certs)
        self.kubectl_bin = _binary("KUBEGPU_KUBECTL", "kubectl")
        self.helm_bin = _binary("KUBEGPU_HELM", "helm")
        self.proc = None
        self.log = os.path.join(self.workdir, "apiserver.log")

    def start(self):
        env = dict(os.environ, PYTHONPATH=SIM + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubegpu_sim.apiserver", "--cert-dir", self.certs, "--bind-address", "127.0.0.1",
             "--secure-port", str(self.port), "--advertise-address", "127.0.0.1", "--data-dir", self.data,
             "--schemas", _schemas_dir() or "", "--service-cluster-ip-range", "10.96.0.0/12"]
            # KUBEGPU_SIM_VERBOSE=1: the server's request log in apiserver.log
            + (["-v"] if os.environ.get("KUBEGPU_SIM_VERBOSE") else []),
            env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        with open(self.log) as stream:
            raise RuntimeError("apiserver did not start:\n" + stream.read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self):
        return dict(os.environ, HOME=self.home, KUBECONFIG=self.kubeconfig,
                    HELM_CACHE_HOME=os.path.join(self.home, ".hc"), HELM_CONFIG_HOME=os.path.join(self.home, ".hcfg"),
                    HELM_DATA_HOME=os.path.join(self.home, ".hd"))

    def run(self, binary, *args, stdin=None, check=True, timeout=60):
        # check=False: a failure is raised below as an AssertionError with the output
        proc = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, env=self.env(),
                              timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("%s %s -> %d\nstdout:%s\nstderr:%s" % (
                os.path.basename(binary), " ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def kubectl(self, *args, **kw):
        if not self.kubectl_bin:
            pytest.skip("kubectl 1.35 not found: run scripts/fetch-helm.sh or set KUBEGPU_KUBECTL")
        return self.run(self.kubectl_bin, *args, **kw)

    def helm(self, *args, **kw):
        if not self.helm_bin:
            pytest.skip("helm not found: run scripts/fetch-helm.sh or set KUBEGPU_HELM")
        return self.run(self.helm_bin, *args, **kw)

    def write_kubeconfig(self, path, user):
        return write_kubeconfig(path, self.server, self.certs, user)

    def client(self):
        from kubegpu_sim.client import Client
        return Client.from_kubeconfig(self.kubeconfig)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not found")
    if _schemas_dir() is None:
        pytest.skip("kubernetes-validate schemas not found")
    c = Cluster(tmp_path_factory.mktemp("apiserver")).start()
    yield c
    c.stop()
