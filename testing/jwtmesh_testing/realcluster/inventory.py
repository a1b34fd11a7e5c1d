"""Every object jwtmesh made that still exists: what `helm uninstall` and the removal of
the CRDs must leave none of.

Found by what marks them, not by the names we expect: the chart's label
(`app.kubernetes.io/name: jwtmesh`), the operator's (`app.kubernetes.io/managed-by:
jwtmesh-operator`), the signing-key Secret type, the trust-bundle label, and names with
"jwtmesh" for cluster-wide kinds; the CRDs of jwtmesh.io and kopf.dev.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from jwtmesh_testing.realcluster.clusterapi import ClusterApi

CHART_LABEL = "app.kubernetes.io/name=jwtmesh"
OPERATOR_LABEL = "app.kubernetes.io/managed-by=jwtmesh-operator"


def _names(listed: Any) -> list[str]:
    return [
        f"{item.metadata.namespace}/{item.metadata.name}"
        if item.metadata.namespace
        else item.metadata.name
        for item in listed.items
    ]


def _named_jwtmesh(listed: Any) -> list[str]:
    return [name for name in _names(listed) if "jwtmesh" in name]


def jwtmesh_objects(api: ClusterApi) -> dict[str, list[str]]:
    """kind → the objects of that kind left (kinds with none are left out)."""
    core, rbac = api.core, client.RbacAuthorizationV1Api(api.api)
    leases: Any = api.coordination.list_lease_for_all_namespaces()
    admission = client.AdmissionregistrationV1Api(api.api)
    apps, policy = client.AppsV1Api(api.api), client.PolicyV1Api(api.api)
    extensions = client.ApiextensionsV1Api(api.api)
    secrets: Any = core.list_secret_for_all_namespaces()
    found: dict[str, list[str]] = {
        "Secret": sorted(
            f"{s.metadata.namespace}/{s.metadata.name}"
            for s in secrets.items
            if s.type == "jwtmesh.io/signing-key"
            or (s.metadata.labels or {}).get("app.kubernetes.io/name") == "jwtmesh"
            or (s.metadata.labels or {}).get("app.kubernetes.io/managed-by") == "jwtmesh-operator"
        ),
        "ConfigMap": sorted(
            {
                *_names(core.list_config_map_for_all_namespaces(label_selector=OPERATOR_LABEL)),
                *_names(core.list_config_map_for_all_namespaces(label_selector=CHART_LABEL)),
                *_names(
                    core.list_config_map_for_all_namespaces(
                        label_selector="jwtmesh.io/trust-bundle"
                    )
                ),
            }
        ),
        "ServiceAccount/Service/Deployment/PodDisruptionBudget": [
            *_names(core.list_service_account_for_all_namespaces(label_selector=CHART_LABEL)),
            *_names(core.list_service_for_all_namespaces(label_selector=CHART_LABEL)),
            *_names(apps.list_deployment_for_all_namespaces(label_selector=CHART_LABEL)),
            *_names(
                policy.list_pod_disruption_budget_for_all_namespaces(label_selector=CHART_LABEL)
            ),
        ],
        "Lease": _named_jwtmesh(leases),
        "MutatingWebhookConfiguration": _named_jwtmesh(
            admission.list_mutating_webhook_configuration()
        ),
        "ValidatingWebhookConfiguration": _named_jwtmesh(
            admission.list_validating_webhook_configuration()
        ),
        "ValidatingAdmissionPolicy(Binding)": [
            *_named_jwtmesh(admission.list_validating_admission_policy()),
            *_named_jwtmesh(admission.list_validating_admission_policy_binding()),
        ],
        "ClusterRole(Binding)": [
            *_named_jwtmesh(rbac.list_cluster_role()),
            *_named_jwtmesh(rbac.list_cluster_role_binding()),
        ],
        "Role(Binding)": [
            *_named_jwtmesh(rbac.list_role_for_all_namespaces()),
            *_named_jwtmesh(rbac.list_role_binding_for_all_namespaces()),
        ],
        "CustomResourceDefinition": [
            name
            for name in _names(extensions.list_custom_resource_definition())
            if name.endswith((".jwtmesh.io", ".kopf.dev"))
        ],
    }
    return {kind: names for kind, names in found.items() if names}
