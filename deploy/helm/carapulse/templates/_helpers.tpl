{{/*
Names, labels and the pod pieces every component shares. Templates use only Go template
actions, `include` and Sprig functions, so the chart renders with Helm and with the renderer of
crates/chart-check (the CI test, since no helm binary is available there).
*/}}

{{- define "carapulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "carapulse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of a component; call with (dict "root" . "component" "gateway"). */}}
{{- define "carapulse.labels" -}}
{{ include "carapulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "carapulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "carapulse.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "carapulse.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.registry .component (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{- define "carapulse.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- include "carapulse.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the signing keys (grant key, audit checkpoint key): each key reaches only
the components that use it, through secretKeyRef, never envFrom. */}}
{{- define "carapulse.keysSecretName" -}}
{{- if .Values.secrets.existingKeysSecret -}}
{{- .Values.secrets.existingKeysSecret -}}
{{- else -}}
{{- printf "%s-keys" (include "carapulse.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Per-component keys: the grant key for the orchestrator (mints) and the tool router (checks);
the audit checkpoint key for the gateway (signs). */}}
{{- define "carapulse.keyEnv" -}}
{{- if or (eq .component "orchestrator") (eq .component "tool-router") }}
- name: CARAPULSE_TOOL_ROUTER_GRANT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "carapulse.keysSecretName" .root }}
      key: CARAPULSE_TOOL_ROUTER_GRANT_KEY
{{- end }}
{{- if and (eq .component "gateway") (or .root.Values.secrets.auditCheckpointKey .root.Values.secrets.existingKeysSecret) }}
- name: CARAPULSE_AUDIT_CHECKPOINT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "carapulse.keysSecretName" .root }}
      key: CARAPULSE_AUDIT_CHECKPOINT_KEY
      optional: true
{{- end }}
{{- end -}}

{{- define "carapulse.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- printf "%s-%s" (include "carapulse.fullname" .root) .component -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* Environment shared by every component: where the config is, and the chart's addresses. */}}
{{- define "carapulse.env" -}}
- name: CARAPULSE_CONFIG
  value: /etc/carapulse/config.json
- name: CARAPULSE__TOOL_ROUTER__BASE_URL
  value: "http://{{ include "carapulse.fullname" . }}-tool-router:{{ .Values.toolRouter.service.port }}"
- name: CARAPULSE__ORCHESTRATOR__TEMPORAL_ADDR
  value: {{ .Values.temporal.address | quote }}
- name: CARAPULSE__ORCHESTRATOR__NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: CARAPULSE__ORCHESTRATOR__TASK_QUEUE
  value: {{ .Values.temporal.taskQueue | quote }}
- name: CARAPULSE__STORAGE__OBJECT_STORE__FS_ROOT
  value: {{ .Values.objectStore.fsRoot | quote }}
{{- if eq .Values.objectStore.backend "s3" }}
{{- $s3 := .Values.objectStore.s3 }}
{{- if not $s3.bucket }}{{ fail "objectStore.s3.bucket is required when objectStore.backend is s3" }}{{ end }}
- name: CARAPULSE__STORAGE__OBJECT_STORE__BACKEND
  value: "s3"
- name: CARAPULSE__STORAGE__OBJECT_STORE__BUCKET
  value: {{ $s3.bucket | quote }}
- name: CARAPULSE__STORAGE__OBJECT_STORE__REGION
  value: {{ $s3.region | quote }}
- name: CARAPULSE__STORAGE__OBJECT_STORE__PATH_STYLE
  value: {{ $s3.pathStyle | quote }}
{{- if $s3.endpoint }}
- name: CARAPULSE__STORAGE__OBJECT_STORE__ENDPOINT
  value: {{ $s3.endpoint | quote }}
{{- end }}
{{- if $s3.credentialsSecret }}
- name: CARAPULSE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.credentialsSecret }}
      key: access-key-id
- name: CARAPULSE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.credentialsSecret }}
      key: secret-access-key
{{- end }}
{{- else if ne .Values.objectStore.backend "fs" }}
{{- fail "objectStore.backend must be fs or s3" }}
{{- end }}
- name: CARAPULSE__ORCHESTRATOR__HEALTH_ADDR
  value: ":{{ .Values.orchestrator.healthPort }}"
- name: CARAPULSE__CHATOPS__GATEWAY_URL
  value: "http://{{ include "carapulse.fullname" . }}-gateway:{{ .Values.gateway.service.port }}"
{{- if .Values.llm.provider }}
- name: CARAPULSE__LLM__PROVIDER
  value: {{ .Values.llm.provider | quote }}
{{- end }}
{{- if .Values.llm.model }}
- name: CARAPULSE__LLM__MODEL
  value: {{ .Values.llm.model | quote }}
{{- end }}
{{- if .Values.llm.apiBase }}
- name: CARAPULSE__LLM__API_BASE
  value: {{ .Values.llm.apiBase | quote }}
{{- end }}
{{- if .Values.linear.teamId }}
- name: CARAPULSE__CONNECTORS__LINEAR__TEAM_ID
  value: {{ .Values.linear.teamId | quote }}
{{- end }}
{{- end -}}

{{/* Volumes shared by every pod: config, optional policies, and a writable /tmp. */}}
{{- define "carapulse.volumes" -}}
- name: config
  configMap:
    name: {{ include "carapulse.fullname" . }}
{{- if .Values.policies }}
- name: policies
  configMap:
    name: {{ include "carapulse.fullname" . }}-policies
{{- end }}
- name: tmp
  emptyDir: {}
# Tool outputs over 64 KiB and audit checkpoints (storage.object_store, fs backend): the root
# filesystem is read-only, so they go to a writable volume. Per pod, like the outputs' TTL in the
# router's memory: point storage.object_store at S3 to keep them across restarts.
- name: objects
  emptyDir:
    sizeLimit: {{ .Values.objectStore.emptyDirSizeLimit | quote }}
{{- end -}}

{{- define "carapulse.volumeMounts" -}}
- name: config
  mountPath: /etc/carapulse/config.json
  subPath: config.json
  readOnly: true
{{- if .Values.policies }}
- name: policies
  mountPath: /etc/carapulse/policies
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
- name: objects
  mountPath: {{ .Values.objectStore.fsRoot }}
{{- end -}}

{{/* Probes on /healthz and /readyz of a named port. */}}
{{- define "carapulse.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ . }}}
  initialDelaySeconds: 5
  periodSeconds: 15
  timeoutSeconds: 3
  failureThreshold: 4
readinessProbe:
  httpGet: {path: /readyz, port: {{ . }}}
  initialDelaySeconds: 3
  periodSeconds: 10
  timeoutSeconds: 3
startupProbe:
  httpGet: {path: /healthz, port: {{ . }}}
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}

{{/*
One component's Deployment; call with (dict "root" . "component" "gateway" "values" .Values.gateway
"ports" (list ...) "probePort" "http" "kubeApi" true).
*/}}
{{- define "carapulse.deployment" -}}
{{- $root := .root -}}
{{- $c := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "carapulse.fullname" $root }}-{{ .component }}
  labels:
    {{- include "carapulse.labels" . | nindent 4 }}
spec:
  replicas: {{ $c.replicas }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  selector:
    matchLabels:
      {{- include "carapulse.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "carapulse.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ toJson $root.Values.config | sha256sum | quote }}
        checksum/policies: {{ toJson $root.Values.policies | sha256sum | quote }}
        {{- with $c.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "carapulse.serviceAccountName" . }}
      automountServiceAccountToken: {{ .kubeApi }}
      enableServiceLinks: false
      {{- if and (eq .component "tool-router") $root.Values.toolRouter.sandbox.userNamespace }}
      # The tool sandbox creates user, mount, PID and network namespaces and mounts a fresh
      # /proc: the pod runs in its own user namespace with an unmasked /proc for that.
      hostUsers: false
      {{- end }}
      securityContext:
        {{- if eq .component "tool-router" }}
        {{- /* set returns the dict it changed (Helm mutates, other renderers copy) */}}
        {{- toYaml (set (deepCopy $root.Values.podSecurityContext) "seccompProfile" $root.Values.toolRouter.sandbox.seccompProfile) | nindent 8 }}
        {{- else }}
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
        {{- end }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "carapulse.image" . | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            {{- toYaml .ports | nindent 12 }}
          env:
            {{- include "carapulse.env" $root | nindent 12 }}
            {{- include "carapulse.keyEnv" . | nindent 12 }}
          envFrom:
            - secretRef:
                name: {{ include "carapulse.secretName" $root }}
          {{- include "carapulse.probes" .probePort | nindent 10 }}
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- if and (eq .component "tool-router") $root.Values.toolRouter.sandbox.userNamespace }}
            {{- toYaml (set (deepCopy $root.Values.securityContext) "procMount" "Unmasked") | nindent 12 }}
            {{- else }}
            {{- toYaml $root.Values.securityContext | nindent 12 }}
            {{- end }}
          volumeMounts:
            {{- include "carapulse.volumeMounts" $root | nindent 12 }}
      volumes:
        {{- include "carapulse.volumes" $root | nindent 8 }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget for a component with more than one replica. */}}
{{- define "carapulse.pdb" -}}
{{- if and .root.Values.podDisruptionBudget.enabled (gt (int .values.replicas) 1) }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "carapulse.fullname" .root }}-{{ .component }}
  labels:
    {{- include "carapulse.labels" . | nindent 4 }}
spec:
  minAvailable: {{ .root.Values.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "carapulse.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A ServiceAccount for a component. */}}
{{- define "carapulse.serviceAccount" -}}
{{- if .root.Values.serviceAccount.create }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "carapulse.serviceAccountName" . }}
  labels:
    {{- include "carapulse.labels" . | nindent 4 }}
  {{- with .root.Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}
