{{/* The cluster profile (cluster/<profile>.yaml through profiles/) as a dict. */}}
{{- define "medllama.profile" -}}
{{- $raw := .Files.Get (printf "profiles/%s.yaml" .Values.profile) -}}
{{- if not $raw -}}
{{- fail (printf "profile %q: no cluster/%s.yaml in the chart's profiles/" .Values.profile .Values.profile) -}}
{{- end -}}
{{- $raw -}}
{{- end -}}

{{- define "medllama.labels" -}}
app.kubernetes.io/part-of: medllama-ops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Pod and container security of every pod we run: the images' non-root user, nothing privileged. */}}
{{- define "medllama.podSecurity" -}}
runAsNonRoot: true
runAsUser: {{ . | default 1000 }}
runAsGroup: {{ . | default 1000 }}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "medllama.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities: {drop: [ALL]}
{{- end -}}

{{/* Secret keys of the profile as env entries. */}}
{{- define "medllama.secretEnv" -}}
{{- range .secrets }}
{{- $secret := .name }}
{{- range .keys }}
- name: {{ . }}
  valueFrom: {secretKeyRef: {name: {{ $secret }}, key: {{ . }}}}
{{- end }}
{{- end }}
{{- end -}}
