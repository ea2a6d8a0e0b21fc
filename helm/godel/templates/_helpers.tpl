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

{{/*
Redis behind the Bitnami subchart. Standalone (and replication without Sentinel): the
master Service <redis fullname>-master. Sentinel (redis.sentinel.enabled, which Bitnami
allows only with architecture=replication): the one Service <redis fullname> (no -master
Service then) whose port sentinel.service.ports.sentinel (26379) reaches the Sentinels,
asked for the master of sentinel.masterSet.
*/}}
{{- define "godel.redisSentinel" -}}
{{- if and .Values.redis.enabled .Values.redis.sentinel.enabled -}}
{{- if ne .Values.redis.architecture "replication" -}}
{{- fail "redis.sentinel.enabled needs redis.architecture=replication (Bitnami runs Sentinel only beside replicas)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* Host:port Godel (and KEDA) connect to first: the master Service, or the Sentinels. */}}
{{- define "godel.redisAddress" -}}
{{- if include "godel.redisSentinel" . -}}
{{- printf "%s:%v" (include "godel.redisFullname" .) .Values.redis.sentinel.service.ports.sentinel -}}
{{- else -}}
{{- printf "%s-master:%v" (include "godel.redisFullname" .) .Values.redis.master.service.ports.redis -}}
{{- end -}}
{{- end -}}

{{/* The bundled Redis's password Secret, as Bitnami names it (redis.secretName). */}}
{{- define "godel.redisSecretName" -}}
{{- .Values.redis.auth.existingSecret | default (include "godel.redisFullname" .) -}}
{{- end -}}

{{/* Bitnami's redis.secretPasswordKey: the existing Secret's key, else redis-password. */}}
{{- define "godel.redisSecretKey" -}}
{{- if and .Values.redis.auth.existingSecret .Values.redis.auth.existingSecretPasswordKey -}}
{{- .Values.redis.auth.existingSecretPasswordKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{/*
GODEL_REDIS_URL. With redis.auth.enabled the password comes from Bitnami's Secret as
REDIS_PASSWORD, which Kubernetes expands inside the URL (defined first, see
godel.redisEnv). Bitnami's generated passwords are alphanumeric; a password of your own
(redis.auth.password or auth.existingSecret) must be URL-safe too.
*/}}
{{- define "godel.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- $auth := ternary ":$(REDIS_PASSWORD)@" "" (.Values.redis.auth.enabled | default false) -}}
{{- if include "godel.redisSentinel" . -}}
{{- printf "redis+sentinel://%s%s/%s/0" $auth (include "godel.redisAddress" .) .Values.redis.sentinel.masterSet -}}
{{- else -}}
{{- printf "redis://%s%s/0" $auth (include "godel.redisAddress" .) -}}
{{- end -}}
{{- else -}}
{{- required "externalRedis.url is required when redis.enabled is false" .Values.externalRedis.url -}}
{{- end -}}
{{- end -}}

{{/* The URL as NOTES.txt shows it: no password placeholder. */}}
{{- define "godel.redisUrlForHumans" -}}
{{- if .Values.redis.enabled -}}
{{- include "godel.redisUrl" . | replace ":$(REDIS_PASSWORD)@" ":<password>@" -}}
{{- else -}}
{{- $u := urlParse .Values.externalRedis.url -}}
{{- printf "%s://%s%s" $u.scheme $u.host $u.path -}}
{{- end -}}
{{- end -}}

{{/* REDIS_PASSWORD (when the bundled Redis has auth on), then GODEL_REDIS_URL. */}}
{{- define "godel.redisEnv" -}}
{{- if and .Values.redis.enabled .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "godel.redisSecretName" . }}
      key: {{ include "godel.redisSecretKey" . }}
{{- end }}
- name: GODEL_REDIS_URL
  value: {{ include "godel.redisUrl" . | quote }}
{{- end -}}

{{/*
The KEDA trigger on the length of godel:queue:pending: redis (standalone, rediss:// with
TLS) or redis-sentinel, from the bundled Redis or parsed from externalRedis.url. Passwords
are never written here: KEDA reads them from the worker container's env (*FromEnv).
*/}}
{{- define "godel.kedaRedisTrigger" -}}
{{- $keda := .Values.worker.autoscaling.keda -}}
{{- $type := "redis" -}}
{{- $address := "" -}}
{{- $master := "" -}}
{{- $db := "0" -}}
{{- $tls := false -}}
{{- $password := $keda.redis.passwordFromEnv -}}
{{- $sentinelPassword := "" -}}
{{- if .Values.redis.enabled -}}
{{- $address = include "godel.redisAddress" . -}}
{{- if include "godel.redisSentinel" . -}}
{{- $type = "redis-sentinel" -}}
{{- $master = .Values.redis.sentinel.masterSet -}}
{{- end -}}
{{- if .Values.redis.auth.enabled -}}
{{- $password = $password | default "REDIS_PASSWORD" -}}
{{- if and $master .Values.redis.auth.sentinel -}}
{{- $sentinelPassword = $password -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $u := urlParse (include "godel.redisUrl" .) -}}
{{- $parts := splitList "/" (trimPrefix "/" $u.path) -}}
{{- if has $u.scheme (list "redis" "rediss") -}}
{{- $address = ternary $u.host (printf "%s:6379" $u.host) (contains ":" $u.host) -}}
{{- $db = first $parts | default "0" -}}
{{- $tls = eq $u.scheme "rediss" -}}
{{- else if has $u.scheme (list "redis+sentinel" "rediss+sentinel") -}}
{{- $type = "redis-sentinel" -}}
{{- $address = ternary $u.host (printf "%s:26379" $u.host) (contains ":" $u.host) -}}
{{- $master = required "externalRedis.url: a redis+sentinel URL names its master: redis+sentinel://host:26379/<master>/0" (first $parts) -}}
{{- if gt (len $parts) 1 -}}
{{- $db = index $parts 1 | default "0" -}}
{{- end -}}
{{- $tls = eq $u.scheme "rediss+sentinel" -}}
{{- $sentinelPassword = $password -}}
{{- else -}}
{{- fail (printf "worker.autoscaling.keda: no KEDA Redis trigger for %s:// URLs (redis, rediss and redis+sentinel are supported)" $u.scheme) -}}
{{- end -}}
{{- end -}}
type: {{ $type }}
name: pending-queue
metadata:
  {{- if eq $type "redis-sentinel" }}
  addresses: {{ $address | quote }}
  sentinelMaster: {{ $master | quote }}
  {{- else }}
  address: {{ $address | quote }}
  {{- end }}
  databaseIndex: {{ $db | quote }}
  listName: "godel:queue:pending"
  listLength: {{ $keda.redis.listLength | quote }}
  activationListLength: {{ $keda.redis.activationListLength | quote }}
  {{- if $tls }}
  enableTLS: "true"
  {{- end }}
  {{- if $password }}
  passwordFromEnv: {{ $password }}
  {{- end }}
  {{- if $sentinelPassword }}
  sentinelPasswordFromEnv: {{ $sentinelPassword }}
  {{- end }}
{{- end -}}

{{- define "godel.adminSecretName" -}}
{{- .Values.admin.existingSecret | default (printf "%s-admin" (include "godel.fullname" .)) -}}
{{- end -}}

{{/* The chart's own Secret keeps the token under `token`; admin.existingSecretKey is for yours. */}}
{{- define "godel.adminSecretKey" -}}
{{- if .Values.admin.existingSecret -}}
{{- .Values.admin.existingSecretKey -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/* GODEL_API_KEYS from auth.apiKeys: name:scope+scope:secret, comma-separated. */}}
{{- define "godel.apiKeysValue" -}}
{{- $keys := list -}}
{{- range .Values.auth.apiKeys -}}
{{- $keys = append $keys (printf "%s:%s:%s" .name (join "+" .scopes) .secret) -}}
{{- end -}}
{{- join "," $keys -}}
{{- end -}}

{{/* GODEL_API_KEYS on the API pods, when there are keys (auth.existingSecret or apiKeys). */}}
{{- define "godel.apiKeysEnv" -}}
{{- if or .Values.auth.existingSecret .Values.auth.apiKeys }}
- name: GODEL_API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.auth.existingSecret | default (printf "%s-api-keys" (include "godel.fullname" .)) }}
      key: {{ ternary .Values.auth.existingSecretKey "keys" (ne .Values.auth.existingSecret "") }}
{{- end }}
{{- end -}}

{{- define "godel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "godel.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The API's default affinity: replicas prefer distinct nodes. Pass the API's $ctx. */}}
{{- define "godel.apiSpread" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "godel.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/*
What the API and worker pods share: the ServiceAccount, pull secrets, scheduling. Pass a
dict with "root" and "defaultAffinity" (YAML; used when .Values.affinity is empty).
*/}}
{{- define "godel.podCommon" -}}
{{- $v := .root.Values -}}
serviceAccountName: {{ include "godel.serviceAccountName" .root }}
automountServiceAccountToken: {{ $v.serviceAccount.automount }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if .defaultAffinity }}
affinity:
  {{- .defaultAffinity | nindent 2 }}
{{- end }}
securityContext:
  {{- include "godel.podSecurityContext" .root | nindent 2 }}
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
