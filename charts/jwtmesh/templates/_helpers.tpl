{{- define "jwtmesh.fullname" -}}
{{- printf "%s-jwtmesh" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwtmesh.labels" -}}
app.kubernetes.io/name: jwtmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "jwtmesh.selector" -}}
app.kubernetes.io/name: jwtmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "jwtmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the webhook's certificate comes from: certManager or helm (auto: cert-manager
when its API is installed). */}}
{{- define "jwtmesh.certSource" -}}
{{- $source := .Values.injection.certificate -}}
{{- if eq $source "auto" -}}
{{- if .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}certManager{{- else -}}helm{{- end -}}
{{- else -}}{{ $source }}{{- end -}}
{{- end -}}

{{/* The webhook's TLS material, base64 (crt, key, ca): the Secret already in the cluster
when there is one (so upgrades keep it), else a new CA and certificate. Rendered once per
template that asks; the lookup makes every rendering agree. */}}
{{- define "jwtmesh.webhookTLS" -}}
{{- $service := printf "%s-webhook" (include "jwtmesh.fullname" .) -}}
{{- $secretName := printf "%s-webhook-tls" (include "jwtmesh.fullname" .) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- if and $existing $existing.data (hasKey $existing.data "tls.crt") (hasKey $existing.data "ca.crt") -}}
{{- toYaml (dict "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key") "ca" (index $existing.data "ca.crt")) -}}
{{- else -}}
{{- if not (hasKey .Release "jwtmeshTLS") -}}
{{- $dns := list $service (printf "%s.%s" $service .Release.Namespace) (printf "%s.%s.svc" $service .Release.Namespace) -}}
{{- $ca := genCA "jwtmesh-webhook-ca" 3650 -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $service .Release.Namespace) nil $dns 3650 $ca -}}
{{- $_ := set .Release "jwtmeshTLS" (dict "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "ca" ($ca.Cert | b64enc)) -}}
{{- end -}}
{{- toYaml (get .Release "jwtmeshTLS") -}}
{{- end -}}
{{- end -}}

{{/* The chart needs Kubernetes 1.30 (ValidatingAdmissionPolicy v1). Checked against a real
cluster only (lookup finds nothing under `helm template`, which renders for any version). */}}
{{- define "jwtmesh.checkKubeVersion" -}}
{{- if lookup "v1" "Namespace" "" "default" -}}
{{- if semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version -}}
{{- fail (printf "jwtmesh needs Kubernetes 1.30 or newer (ValidatingAdmissionPolicy v1); this cluster runs %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}
{{- end -}}
