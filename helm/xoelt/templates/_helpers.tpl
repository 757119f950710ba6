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


{{/*
The pod spec of every xoelt run: the pipelines' CronJobs and the backfill Job. Call with
(dict "root" $ "name" "domain/name" "c" $settings "args" (list "run" "domain/name")), where
$settings holds the pipeline's target, resources, env, nodeSelector, tolerations and affinity
(pipelineOverrides over the global values). Mirrored by xoelt.k8sjob.pod_spec; a test checks
both agree.
*/}}
{{- define "xoelt.podSpec" -}}
{{- $emptyDir := dict -}}
{{- range $key, $value := pick (.root.Values.scratch | default dict) "medium" "sizeLimit" }}
{{- if $value }}{{ $_ := set $emptyDir $key $value }}{{ end }}
{{- end -}}
restartPolicy: Never
{{- with .root.Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
automountServiceAccountToken: {{ .root.Values.automountServiceAccountToken }}
{{- if not (kindIs "invalid" .root.Values.terminationGracePeriodSeconds) }}
terminationGracePeriodSeconds: {{ .root.Values.terminationGracePeriodSeconds | int64 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: xoelt
    image: {{ include "xoelt.image" .root | quote }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    command: ["xoelt"]
    args: {{ toJson .args }}
    env:
      - name: XOELT_HOME
        value: /tmp/xoelt
      - name: HOME
        value: /tmp
      {{- with .c.target }}
      - name: XOELT_TARGET
        value: {{ . | quote }}
      {{- end }}
      {{- if or .root.Values.targetsFile.configMap .root.Values.targetsFile.secret }}
      - name: XOELT_TARGETS
        value: {{ printf "%s/%s" (trimSuffix "/" .root.Values.targetsFile.mountPath) .root.Values.targetsFile.key | quote }}
      {{- end }}
      {{- with .root.Values.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with .c.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- if or .root.Values.existingSecret .root.Values.envFrom }}
    envFrom:
      {{- with .root.Values.existingSecret }}
      - secretRef:
          name: {{ . }}
      {{- end }}
      {{- with .root.Values.envFrom }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
    {{- with .c.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .root.Values.securityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: scratch
        mountPath: /tmp
      {{- if or .root.Values.targetsFile.configMap .root.Values.targetsFile.secret }}
      - name: targets
        mountPath: {{ .root.Values.targetsFile.mountPath }}
        readOnly: true
      {{- end }}
      {{- with .root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: scratch
    emptyDir: {{ toJson $emptyDir }}
  {{- if .root.Values.targetsFile.secret }}
  - name: targets
    secret:
      secretName: {{ .root.Values.targetsFile.secret }}
      items:
        - key: {{ .root.Values.targetsFile.key }}
          path: {{ .root.Values.targetsFile.key }}
  {{- else if .root.Values.targetsFile.configMap }}
  - name: targets
    configMap:
      name: {{ .root.Values.targetsFile.configMap }}
      items:
        - key: {{ .root.Values.targetsFile.key }}
          path: {{ .root.Values.targetsFile.key }}
  {{- end }}
  {{- with .root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
Name of the backfill Job: <prefix>-backfill-<domain>-<name> cut to 43 characters, "-" and
8 hex digits of the SHA-256 of "<pipeline> <start> <end>" (one name per range). Same rule as
xoelt.k8sjob.job_name. Call with (dict "root" $ "name" "domain/name" "start" D1 "end" D2).
*/}}
{{- define "xoelt.backfillJobName" -}}
{{- $base := printf "%s-backfill-%s" (include "xoelt.name" .root) .name | lower | replace "/" "-" | replace "_" "-" -}}
{{- $base = regexReplaceAll "-+$" (trunc 43 (regexReplaceAll "[^a-z0-9-]" $base "-")) "" -}}
{{- printf "%s-%s" $base (printf "%s %s %s" .name .start .end | sha256sum | trunc 8) -}}
{{- end -}}
