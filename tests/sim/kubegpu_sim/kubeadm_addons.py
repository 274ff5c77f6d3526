# SPDX-License-Identifier: Apache-2.0
"""Objects the simulated kubeadm creates in the cluster and the static Pod manifests it
writes (test-only). Shapes follow kubernetes cmd/kubeadm/app/phases/addons/dns/manifests.go,
phases/addons/proxy/manifests.go, phases/controlplane/manifests.go and phases/etcd/local.go."""
from __future__ import annotations

from . import kubeadm_config as kc

# constants/constants.go (kubeadm 1.35): images kubeadm pulls for its version.
COREDNS_IMAGE_PATH = "coredns/coredns"      # constants.CoreDNSImageName
COREDNS_VERSION = "v1.12.1"                 # constants.CoreDNSVersion
ETCD_VERSION = "3.6.6-0"                    # constants.SupportedEtcdVersion[35]
PAUSE_VERSION = "3.10.1"                    # constants.PauseVersion

CONTROL_PLANE_TAINT_KEY = "node-role.kubernetes.io/control-plane"  # constants.LabelNodeRoleControlPlane


def images(cluster):
    """cmd/kubeadm/app/images/images.go GetControlPlaneImages (stacked etcd, CoreDNS, kube-proxy)."""
    repo = cluster.get("imageRepository", kc.DEFAULT_IMAGE_REPOSITORY)
    version = cluster.get("kubernetesVersion", kc.KUBERNETES_VERSION)
    dns = cluster.get("dns") or {}
    out = ["%s/kube-apiserver:%s" % (repo, version), "%s/kube-controller-manager:%s" % (repo, version),
           "%s/kube-scheduler:%s" % (repo, version)]
    if not (cluster.get("proxy") or {}).get("disabled"):
        out.append("%s/kube-proxy:%s" % (repo, version))
    if not dns.get("disabled"):
        out.append("%s/%s:%s" % (dns.get("imageRepository") or repo, COREDNS_IMAGE_PATH,
                                 dns.get("imageTag") or COREDNS_VERSION))
    out.append("%s/pause:%s" % (repo, PAUSE_VERSION))
    if "external" not in (cluster.get("etcd") or {}):
        local = (cluster.get("etcd") or {}).get("local") or {}
        out.append("%s/etcd:%s" % (local.get("imageRepository") or repo, local.get("imageTag") or ETCD_VERSION))
    return out


# --- CoreDNS (phases/addons/dns/manifests.go + dns.go coreDNSAddon) ----------------------------

def corefile(dns_domain):
    """manifests.go CoreDNSConfigMap (the Corefile kubeadm writes)."""
    return (".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n"
            "    kubernetes %s in-addr.arpa ip6.arpa {\n       pods insecure\n"
            "       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    prometheus :9153\n"
            "    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n"
            "    cache 30 {\n       disable success %s\n       disable denial %s\n    }\n"
            "    loop\n    reload\n    loadbalance\n}\n" % (dns_domain, dns_domain, dns_domain))


def coredns_objects(cluster):
    repo = (cluster.get("dns") or {}).get("imageRepository") or cluster.get("imageRepository", kc.DEFAULT_IMAGE_REPOSITORY)
    tag = (cluster.get("dns") or {}).get("imageTag") or COREDNS_VERSION
    domain = cluster["networking"]["dnsDomain"]
    dns_ip = kc.service_ip(cluster["networking"]["serviceSubnet"], 10)  # constants.go GetDNSIP
    labels = {"k8s-app": "kube-dns"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "replicas": 2,  # dns.go: constants.CoreDNSReplicas
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "serviceAccountName": "coredns",
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100, "podAffinityTerm": {
                            "labelSelector": {"matchExpressions": [
                                {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                            "topologyKey": "kubernetes.io/hostname"}}]}},
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": CONTROL_PLANE_TAINT_KEY, "effect": "NoSchedule"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "containers": [{
                        "name": "coredns", "image": "%s/%s:%s" % (repo, COREDNS_IMAGE_PATH, tag),
                        "imagePullPolicy": "IfNotPresent",
                        "resources": {"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}},
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns", "readOnly": True}],
                        "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                                  {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                                  {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080, "scheme": "HTTP"},
                                          "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                          "successThreshold": 1, "failureThreshold": 5},
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181, "scheme": "HTTP"}},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True},
                    }],
                    "dnsPolicy": "Default",
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "CoreDNS"},
                     "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
        "spec": {"clusterIP": dns_ip, "selector": dict(labels),
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]},
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
         "data": {"Corefile": corefile(domain)}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                    "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": "kube-system"}},
        deployment,
        service,
    ]


# --- kube-proxy (phases/addons/proxy/proxy.go + manifests.go) ----------------------------------

def kube_proxy_config(cluster, given=None):
    """componentconfigs/kubeproxy.go kubeProxyConfig.Default: bindAddress 0.0.0.0 (IPv4),
    clusterCIDR = podSubnet, clientConnection.kubeconfig /var/lib/kube-proxy/kubeconfig.conf."""
    config = {"apiVersion": kc.KUBEPROXY_GV, "kind": "KubeProxyConfiguration", "bindAddress": "0.0.0.0",
              "clientConnection": {"kubeconfig": "/var/lib/kube-proxy/kubeconfig.conf"},
              "clusterCIDR": cluster["networking"].get("podSubnet", ""), "mode": ""}
    config.update(given or {})
    return config


def kube_proxy_objects(cluster, server, given=None):
    repo = cluster.get("imageRepository", kc.DEFAULT_IMAGE_REPOSITORY)
    kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
                  "    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n"
                  "    server: %s\n  name: default\ncontexts:\n- context:\n    cluster: default\n"
                  "    namespace: default\n    user: default\n  name: default\ncurrent-context: default\n"
                  "users:\n- name: default\n  user:\n"
                  "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n" % server)
    labels = {"k8s-app": "kube-proxy"}
    daemonset = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "containers": [{
                        "name": "kube-proxy", "image": "%s/kube-proxy:%s" % (repo, cluster["kubernetesVersion"]),
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                    "--hostname-override=$(NODE_NAME)"],
                        "securityContext": {"privileged": True},
                        "volumeMounts": [{"mountPath": "/var/lib/kube-proxy", "name": "kube-proxy"},
                                         {"mountPath": "/run/xtables.lock", "name": "xtables-lock"},
                                         {"mountPath": "/lib/modules", "name": "lib-modules", "readOnly": True}],
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    }],
                    "hostNetwork": True,
                    "serviceAccountName": "kube-proxy",
                    "volumes": [{"name": "kube-proxy", "configMap": {"name": "kube-proxy"}},
                                {"name": "xtables-lock", "hostPath": {"path": "/run/xtables.lock", "type": "FileOrCreate"}},
                                {"name": "lib-modules", "hostPath": {"path": "/lib/modules"}}],
                    "tolerations": [{"operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                },
            },
        },
    }
    from . import yamlish
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "kube-proxy", "namespace": "kube-system"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "kubeadm:node-proxier"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-proxier"},
         "subjects": [{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"app": "kube-proxy"}},
         "data": {"config.conf": yamlish.dump(kube_proxy_config(cluster, given)), "kubeconfig.conf": kubeconfig}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kube-proxy"],
                    "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kube-proxy"},
         "subjects": [{"kind": "Group", "name": "system:bootstrappers:kubeadm:default-node-token"}]},
        daemonset,
    ]


# --- RBAC of the bootstrap-token / upload-config phases ----------------------------------------

def _crb(name, role, groups):
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g} for g in groups]}


def bootstrap_rbac():
    """phases/bootstraptoken/node/tlsbootstrap.go AllowBootstrapTokensToPostCSRs,
    AllowBootstrapTokensToGetNodes, AutoApproveNodeBootstrapTokens,
    AutoApproveNodeCertificateRotation; clusterinfo.go CreateClusterInfoRBACRules;
    phases/kubeconfig EnsureAdminClusterRoleBinding (kubeadm:cluster-admins)."""
    group = "system:bootstrappers:kubeadm:default-node-token"
    return [
        _crb("kubeadm:cluster-admins", "cluster-admin", ["kubeadm:cluster-admins"]),
        _crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", [group]),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kubeadm:get-nodes"},
         "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]},
        _crb("kubeadm:get-nodes", "kubeadm:get-nodes", [group]),
        _crb("kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
             [group]),
        _crb("kubeadm:node-autoapprove-certificate-rotation",
             "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", ["system:nodes"]),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"],
                    "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "kubeadm:bootstrap-signer-clusterinfo"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]},
    ]


def upload_config_rbac():
    """phases/uploadconfig/uploadconfig.go UploadConfiguration (kubeadm:nodes-kubeadm-config)
    and phases/kubelet/config.go createConfigMapRBACRules (kubeadm:kubelet-config)."""
    subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                for g in ("system:bootstrappers:kubeadm:default-node-token", "system:nodes")]
    out = []
    for name, cm in (("kubeadm:nodes-kubeadm-config", "kubeadm-config"), ("kubeadm:kubelet-config", "kubelet-config")):
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": name, "namespace": "kube-system"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [cm], "verbs": ["get"]}]})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": "kube-system"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                    "subjects": subjects})
    return out


# --- static Pod manifests (phases/controlplane/manifests.go GetStaticPodSpecs, etcd/local.go) ----

def _static_pod(name, image, command, annotations=None, port=None, host_ip="127.0.0.1", scheme="HTTPS",
                probe_path="/livez", volumes=()):
    probe = {"httpGet": {"host": host_ip, "path": probe_path, "port": port, "scheme": scheme},
             "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 15, "failureThreshold": 8}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system", "annotations": annotations or {},
                     "labels": {"component": name, "tier": "control-plane"}},
        "spec": {
            "containers": [{"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": command, "livenessProbe": probe,
                            "resources": {"requests": {"cpu": "250m" if name == "kube-apiserver" else "100m"}},
                            "volumeMounts": [{"name": v, "mountPath": p, "readOnly": True} for v, p in volumes]}],
            "hostNetwork": True, "priority": 2000001000, "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": v, "hostPath": {"path": p, "type": "DirectoryOrCreate"}} for v, p in volumes],
        },
    }


def static_pods(cluster, node_name, advertise_address, bind_port):
    repo = cluster.get("imageRepository", kc.DEFAULT_IMAGE_REPOSITORY)
    version = cluster["kubernetesVersion"]
    net = cluster["networking"]
    pki = cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR)
    certs = [("k8s-certs", pki), ("ca-certs", "/etc/ssl/certs")]
    apiserver = _static_pod(
        "kube-apiserver", "%s/kube-apiserver:%s" % (repo, version),
        ["kube-apiserver", "--advertise-address=%s" % advertise_address, "--allow-privileged=true",
         "--authorization-mode=Node,RBAC", "--client-ca-file=%s/ca.crt" % pki,
         "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
         "--etcd-servers=https://127.0.0.1:2379", "--secure-port=%d" % bind_port,
         "--service-account-key-file=%s/sa.pub" % pki, "--service-account-signing-key-file=%s/sa.key" % pki,
         "--service-cluster-ip-range=%s" % net["serviceSubnet"],
         "--tls-cert-file=%s/apiserver.crt" % pki, "--tls-private-key-file=%s/apiserver.key" % pki],
        {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "%s:%d" % (advertise_address, bind_port)},
        bind_port, advertise_address, volumes=certs)
    cm_cmd = ["kube-controller-manager", "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
              "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf", "--bind-address=127.0.0.1",
              "--client-ca-file=%s/ca.crt" % pki, "--cluster-name=%s" % cluster.get("clusterName", "kubernetes"),
              "--cluster-signing-cert-file=%s/ca.crt" % pki, "--cluster-signing-key-file=%s/ca.key" % pki,
              "--controllers=*,bootstrapsigner,tokencleaner", "--kubeconfig=/etc/kubernetes/controller-manager.conf",
              "--leader-elect=true", "--root-ca-file=%s/ca.crt" % pki,
              "--service-account-private-key-file=%s/sa.key" % pki, "--use-service-account-credentials=true"]
    if net.get("podSubnet"):
        # manifests.go getControllerManagerCommand: allocate-node-cidrs + cluster-cidr when podSubnet is set
        cm_cmd += ["--allocate-node-cidrs=true", "--cluster-cidr=%s" % net["podSubnet"]]
    return {
        "etcd.yaml": _static_pod(
            "etcd", "%s/etcd:%s" % (repo, ETCD_VERSION),
            ["etcd", "--advertise-client-urls=https://%s:2379" % advertise_address, "--data-dir=/var/lib/etcd",
             "--name=%s" % node_name, "--listen-client-urls=https://127.0.0.1:2379,https://%s:2379" % advertise_address],
            {"kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://%s:2379" % advertise_address},
            2381, "127.0.0.1", "HTTP", "/livez", volumes=[("etcd-data", "/var/lib/etcd"), ("etcd-certs", pki + "/etcd")]),
        "kube-apiserver.yaml": apiserver,
        "kube-controller-manager.yaml": _static_pod(
            "kube-controller-manager", "%s/kube-controller-manager:%s" % (repo, version), cm_cmd, None, 10257,
            probe_path="/healthz", volumes=certs),
        "kube-scheduler.yaml": _static_pod(
            "kube-scheduler", "%s/kube-scheduler:%s" % (repo, version),
            ["kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
             "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf", "--bind-address=127.0.0.1",
             "--kubeconfig=/etc/kubernetes/scheduler.conf", "--leader-elect=true"], None, 10259,
            probe_path="/livez", volumes=[]),
    }
