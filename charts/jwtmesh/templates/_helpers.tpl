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
