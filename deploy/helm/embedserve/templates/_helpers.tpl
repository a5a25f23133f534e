{{- define "embedserve.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "embedserve.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "embedserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "embedserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "embedserve.labels" -}}
{{ include "embedserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The Qdrant URL: the bundled cluster's Service when enabled, else qdrant.url. */}}
{{- define "embedserve.qdrantURL" -}}
{{- if .Values.qdrant.enabled -}}
{{- printf "http://%s:6333" (include "embedserve.qdrantName" .) -}}
{{- else -}}
{{- .Values.qdrant.url -}}
{{- end -}}
{{- end -}}

{{/* The headless Service's name: the suffix kept within a Service name's 63 characters. */}}
{{- define "embedserve.headlessName" -}}
{{- printf "%s-headless" (include "embedserve.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* The bundled Qdrant's Service, named as charts/qdrant names it ("qdrant.name"). */}}
{{- define "embedserve.qdrantName" -}}
{{- printf "%s-qdrant" (.Release.Name | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{/*
The EMBEDSERVE_DEFAULT_* layout, as YAML (variable: value): with the bundled cluster its
defaults (3 shards, 2 replicas but at most its nodes, write consistency 1) for the values
left null; with qdrant.url only the values set; with the embedded store none (it has a
single shard and would only report them).
*/}}
{{- define "embedserve.qdrantLayout" -}}
{{- $q := .Values.qdrant -}}
{{- $layout := dict -}}
{{- if $q.enabled -}}
{{- $nodes := int $q.replicaCount -}}
{{- $rf := int ($q.defaultReplicationFactor | default (min 2 $nodes)) -}}
{{- if gt $rf $nodes -}}
{{- fail (printf "qdrant.defaultReplicationFactor (%d) is more than qdrant.replicaCount (%d), the bundled cluster's nodes: Qdrant would refuse every collection create; lower it or add nodes" $rf $nodes) -}}
{{- end -}}
{{- $layout = dict "EMBEDSERVE_DEFAULT_SHARD_NUMBER" (int ($q.defaultShardNumber | default 3)) "EMBEDSERVE_DEFAULT_REPLICATION_FACTOR" $rf "EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR" (int ($q.defaultWriteConsistencyFactor | default 1)) -}}
{{- else if $q.url -}}
{{- range $key, $name := dict "defaultShardNumber" "SHARD_NUMBER" "defaultReplicationFactor" "REPLICATION_FACTOR" "defaultWriteConsistencyFactor" "WRITE_CONSISTENCY_FACTOR" -}}
{{- with index $q $key -}}
{{- $_ := set $layout (printf "EMBEDSERVE_DEFAULT_%s" $name) (int .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $wcf := index $layout "EMBEDSERVE_DEFAULT_WRITE_CONSISTENCY_FACTOR" -}}
{{- /* unset, the server's default replication factor is 1 */ -}}
{{- $rf := index $layout "EMBEDSERVE_DEFAULT_REPLICATION_FACTOR" | default 1 -}}
{{- if and $wcf (gt $wcf $rf) -}}
{{- fail (printf "qdrant.defaultWriteConsistencyFactor (%d) is more than the replication factor (%d): every collection create would be refused" $wcf $rf) -}}
{{- end -}}
{{- with $layout }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Combinations of values that cannot work, refused before anything is installed. */}}
{{- define "embedserve.validate" -}}
{{- $ports := dict -}}
{{- range $name, $port := .Values.ports -}}
{{- if $port -}}
{{- $key := toString $port -}}
{{- if hasKey $ports $key -}}
{{- fail (printf "ports.%s and ports.%s are both %s: the server listens on each separately" (get $ports $key) $name $key) -}}
{{- end -}}
{{- $_ := set $ports $key $name -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.clientCA (not .Values.tls.existingSecret) -}}
{{- fail "tls.clientCA needs tls.existingSecret: the client CA is that Secret's ca.crt" -}}
{{- end -}}
{{- if and .Values.tls.probeClientSecret (not .Values.tls.clientCA) -}}
{{- fail "tls.probeClientSecret is used with tls.clientCA (mutual TLS) only: set tls.clientCA=true or leave it empty" -}}
{{- end -}}
{{- with .Values.qdrant.apiKeySecret -}}
{{- if not (and .name .key) -}}
{{- fail "qdrant.apiKeySecret needs both name (the Secret) and key (the key inside it)" -}}
{{- end -}}
{{- if not (include "embedserve.qdrantURL" $) -}}
{{- fail "qdrant.apiKeySecret is the key of a Qdrant server: set qdrant.url or qdrant.enabled=true (the embedded store takes none)" -}}
{{- end -}}
{{- end -}}
{{- end -}}
