package embedserve

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/health" // client-side health checking for healthCheckConfig
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// balancingServiceConfig is the service config that several addresses or a
// "dns:///" target get: round_robin over every address, a server reporting
// NOT_SERVING (warming up, draining) left out of the rotation, and UNAVAILABLE
// retried on the idempotent calls only. Upsert, Delete, the ingestion streams
// and collection changes are never retried: ingestion resumes through its own
// acknowledgements. Scroll and FindDuplicates are reads; Cluster is not listed,
// since a Cluster with write_label writes payloads and the policy cannot tell
// the two apart. The Python and Java clients use the same JSON.
const balancingServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [
      {"service": "embedserve.v1.EmbeddingService", "method": "Embed"},
      {"service": "embedserve.v1.EmbeddingService", "method": "EmbedTokens"},
      {"service": "embedserve.v1.EmbeddingService", "method": "Tokenize"},
      {"service": "embedserve.v1.EmbeddingService", "method": "Similarity"},
      {"service": "embedserve.v1.EmbeddingService", "method": "GetModelInfo"},
      {"service": "embedserve.v1.EmbeddingService", "method": "Rerank"},
      {"service": "embedserve.v1.VectorService", "method": "Search"},
      {"service": "embedserve.v1.VectorService", "method": "Recommend"},
      {"service": "embedserve.v1.VectorService", "method": "Get"},
      {"service": "embedserve.v1.VectorService", "method": "Count"},
      {"service": "embedserve.v1.VectorService", "method": "ListCollections"},
      {"service": "embedserve.v1.VectorService", "method": "GetCollection"},
      {"service": "embedserve.v1.VectorService", "method": "Scroll"},
      {"service": "embedserve.v1.VectorService", "method": "FindDuplicates"},
      {"service": "embedserve.v1.VectorService", "method": "SearchBatch"},
      {"service": "embedserve.v1.VectorService", "method": "Facet"},
      {"service": "embedserve.v1.VectorService", "method": "ListAliases"}
    ],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// staticScheme names the resolver that serves a fixed address list.
const staticScheme = "embedserve-static"

// balancedTarget turns "host:port,host:port" into a target served by a fixed
// address list, and returns the dial options that turn balancing on for it or
// for a "dns:///" target. A single "host:port" is returned unchanged.
// serverName is the name TLS checks when the caller gave one (WithTLSFromCAFile's
// serverName, WithTLS's ServerName), else "".
func balancedTarget(target, serverName string) (string, []grpc.DialOption, error) {
	balanced := []grpc.DialOption{grpc.WithDefaultServiceConfig(balancingServiceConfig)}
	if strings.HasPrefix(target, "dns:") {
		return target, balanced, nil
	}
	if !strings.Contains(target, ",") {
		return target, nil, nil
	}
	var addresses []resolver.Address
	for _, part := range strings.Split(target, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(part); err != nil {
			return "", nil, fmt.Errorf("embedserve: target %q: %w", part, err)
		}
		addresses = append(addresses, resolver.Address{Addr: part})
	}
	if len(addresses) == 0 {
		return "", nil, fmt.Errorf("embedserve: target %q names no address", target)
	}
	static := manual.NewBuilderWithScheme(staticScheme)
	static.InitialState(resolver.State{Endpoints: endpoints(addresses)})
	balanced = append(balanced, grpc.WithResolvers(static))
	// The first address names the servers (the :authority, and the name TLS
	// checks), unless TLS is given a server name: that one names them then, as
	// it does for a single address (grpc refuses an authority that differs from it).
	if serverName == "" {
		balanced = append(balanced, grpc.WithAuthority(addresses[0].Addr))
	}
	return staticScheme + ":///servers", balanced, nil
}

func endpoints(addresses []resolver.Address) []resolver.Endpoint {
	out := make([]resolver.Endpoint, len(addresses))
	for i, address := range addresses {
		out[i] = resolver.Endpoint{Addresses: []resolver.Address{address}}
	}
	return out
}
