{{/*
Prefix of every object name: nameOverride or the chart name.
*/}}
{{- define "xoelt.name" -}}
{{- default .Chart.Name .Values.nameOverride | lower | trunc 20 | trimSuffix "-" -}}
{{- end -}}

{{- define "xoelt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
CronJob name of a pipeline: <prefix>-<domain>-<name>, lower-case, "/" and "_" to "-", at most
52 characters (the controller appends 11 to name each Job); longer names are cut to 43 and end
with "-" and 8 hex digits of the SHA-256 of the full pipeline name. Same rule as
xoelt.deploy.cronjob_name (a test checks both agree).
Call with (dict "root" $ "name" "domain/name").
*/}}
{{- define "xoelt.cronJobName" -}}
{{- $base := printf "%s-%s" (include "xoelt.name" .root) .name | lower | replace "/" "-" | replace "_" "-" -}}
{{- $base = regexReplaceAll "-+$" (regexReplaceAll "[^a-z0-9-]" $base "-") "" -}}
{{- if gt (len $base) 52 -}}
{{- printf "%s-%s" (regexReplaceAll "-+$" (trunc 43 $base) "") (sha256sum .name | trunc 8) -}}
{{- else -}}
{{- $base -}}
{{- end -}}
{{- end -}}

{{/*
A pipeline name as a label value: "/" to ".", alphanumeric at both ends, at most 63 characters
(longer: cut to 54, "-" and 8 hex digits of its SHA-256). Same rule as
xoelt.deploy.pipeline_label. The exact name is in the xoelt/pipeline annotation.
*/}}
{{- define "xoelt.pipelineLabel" -}}
{{- $v := regexReplaceAll "[^A-Za-z0-9_.-]" (replace "/" "." .) "." -}}
{{- $v = regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $v "" -}}
{{- if gt (len $v) 63 -}}
{{- printf "%s-%s" (regexReplaceAll "[^A-Za-z0-9]+$" (trunc 54 $v) "") (sha256sum . | trunc 8) -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/*
Labels on every object. Call with (dict "root" $ "name" "domain/name").
*/}}
{{- define "xoelt.labels" -}}
helm.sh/chart: {{ include "xoelt.chart" .root }}
{{ include "xoelt.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: pipeline
{{- end -}}

{{- define "xoelt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xoelt.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
xoelt/pipeline: {{ include "xoelt.pipelineLabel" .name | quote }}
{{- end -}}

{{- define "xoelt.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}
