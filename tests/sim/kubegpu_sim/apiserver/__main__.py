# SPDX-License-Identifier: Apache-2.0
"""python3 -m kubegpu_sim.apiserver --cert-dir DIR --bind-address ADDR --secure-port PORT
    --advertise-address IP --data-dir DIR --schemas DIR --service-cluster-ip-range CIDR
    [--audit-log-path FILE]

--audit-log-path (kube-apiserver's flag of that name): append one audit.k8s.io/v1 Event
per line for every request that may change something (server.py Handler._audit). Its
default is $KUBEGPU_SIM_AUDIT_LOG_PATH, so a systemd drop-in with only
Environment=KUBEGPU_SIM_AUDIT_LOG_PATH=... turns it on without touching the command
line kubeadm writes (tests/sim/README.md, "Audit log")."""
from __future__ import annotations

import argparse
import os
import signal
import sys

from . import registry, resources, schema, server, storage


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="kubegpu_sim.apiserver", description=__doc__)
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--bind-address", default="0.0.0.0")
    parser.add_argument("--secure-port", type=int, default=6443)
    parser.add_argument("--advertise-address", default="")
    parser.add_argument("--data-dir", default="/var/lib/kubegpu-sim/apiserver")
    parser.add_argument("--schemas", default="/usr/share/kubegpu-sim/schemas")
    parser.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    parser.add_argument("--audit-log-path", default=os.environ.get("KUBEGPU_SIM_AUDIT_LOG_PATH") or None)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def build(args):
    store = storage.Store(args.data_dir)
    api = registry.Api(store, resources.Registry(), schema.Schemas(args.schemas), args.service_cluster_ip_range)
    api.bootstrap()
    advertise = "%s:%d" % (args.advertise_address or args.bind_address, args.secure_port)
    return server.Server((args.bind_address, args.secure_port), api, server.tls_context(args.cert_dir),
                         advertise, args.verbose, args.audit_log_path)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    httpd = build(args)

    def stop(_signum, _frame):
        httpd.stopping = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print("kubegpu-sim apiserver listening on https://%s:%d" % (args.bind_address, args.secure_port), flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.stopping = True
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
