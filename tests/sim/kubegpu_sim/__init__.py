# SPDX-License-Identifier: Apache-2.0
"""kubegpu's simulated Kubernetes control plane, kubelet and kubeadm (test-only)."""
