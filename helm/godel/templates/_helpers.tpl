{{/*
Base name of Godel's own objects: the release name when it contains "godel" (so
`helm install godel ...` gives godel-api, as the runbook expects), else <release>-godel.
*/}}
{{- define "godel.fullname" -}}
{{- if contains "godel" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-godel" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "godel.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels on every object; pass a dict with "root" (the top context) and "component". */}}
{{- define "godel.labels" -}}
{{ include "godel.selectorLabels" . }}
app.kubernetes.io/part-of: godel
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Same app.kubernetes.io/name values as the plain manifests in k8s/. */}}
{{- define "godel.selectorLabels" -}}
app.kubernetes.io/name: godel-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/* Bitnami's fullname rule for a subchart: fullnameOverride, else <release>-<chart>. */}}
{{- define "godel.redisFullname" -}}
{{- if .Values.redis.fullnameOverride -}}
{{- .Values.redis.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "redis" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-redis" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "godel.postgresqlFullname" -}}
{{- if .Values.postgresql.fullnameOverride -}}
{{- .Values.postgresql.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "postgresql" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-postgresql" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "godel.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s-master:%v/0" (include "godel.redisFullname" .) .Values.redis.master.service.ports.redis -}}
{{- else -}}
{{- required "externalRedis.url is required when redis.enabled is false" .Values.externalRedis.url -}}
{{- end -}}
{{- end -}}

{{- define "godel.adminSecretName" -}}
{{- .Values.admin.existingSecret | default (printf "%s-admin" (include "godel.fullname" .)) -}}
{{- end -}}

{{/*
GODEL_DATABASE_URL: an existing Secret, else the chart's Secret from database.url, else
built from the bundled PostgreSQL's generated password. Kubernetes expands
$(DATABASE_PASSWORD) because that variable is defined before it; Bitnami's generated
passwords are alphanumeric, so they need no URL escaping.
*/}}
{{- define "godel.databaseEnv" -}}
{{- if .Values.database.existingSecret }}
- name: GODEL_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.existingSecretKey }}
{{- else if .Values.database.url }}
- name: GODEL_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "godel.fullname" . }}-database
      key: url
{{- else if .Values.postgresql.enabled }}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.auth.existingSecret | default (include "godel.postgresqlFullname" .) }}
      key: {{ .Values.postgresql.auth.secretKeys.userPasswordKey }}
- name: GODEL_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(DATABASE_PASSWORD)@%s:%v/%s" .Values.postgresql.auth.username (include "godel.postgresqlFullname" .) .Values.postgresql.primary.service.ports.postgresql .Values.postgresql.auth.database | quote }}
{{- else }}
{{- fail "no database: set database.existingSecret, database.url or postgresql.enabled" }}
{{- end }}
{{- end -}}

{{/*
`godel db upgrade` before the app starts; a no-op at head. On a fresh database, pods
racing here may fail once (PostgreSQL DDL is transactional, so the loser rolls back) and
succeed when the init container restarts. An init container rather than a hook Job:
a post-install hook would wait behind `helm install --wait`, a pre-install one for a
database the release has not created yet.
*/}}
{{- define "godel.migrateInitContainer" -}}
- name: migrate
  image: {{ include "godel.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["db", "upgrade"]
  env:
    {{- include "godel.databaseEnv" . | trim | nindent 4 }}
  resources:
    {{- toYaml .Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- include "godel.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    {{- include "godel.writableMounts" . | nindent 4 }}
{{- end -}}

{{/* Settings shared by the API, the workers and their migrate init container. */}}
{{- define "godel.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "godel.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The image's root filesystem is read-only; these are its only writable paths. */}}
{{- define "godel.writableMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/godel
{{- end -}}

{{- define "godel.writableVolumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end -}}
