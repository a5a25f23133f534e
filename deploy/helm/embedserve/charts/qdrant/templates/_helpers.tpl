{{/*
The cluster's name: its StatefulSet and Service. At most 52 characters, as a StatefulSet's
name must be for its pods' controller-revision-hash label (the name, "-" and 10 characters)
to fit in 63; the parent chart's qdrant URL ("embedserve.qdrantName") names it alike.
*/}}
{{- define "qdrant.name" -}}
{{- printf "%s-qdrant" (.Release.Name | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{/* The peers' headless Service: the suffix kept within a Service name's 63 characters. */}}
{{- define "qdrant.headlessName" -}}
{{- printf "%s-headless" (include "qdrant.name" .) -}}
{{- end -}}
