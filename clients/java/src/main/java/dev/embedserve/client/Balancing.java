package dev.embedserve.client;

import io.grpc.Attributes;
import io.grpc.EquivalentAddressGroup;
import io.grpc.NameResolver;
import io.grpc.NameResolverProvider;
import io.grpc.NameResolverRegistry;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/**
 * Client-side balancing over several servers ("host:port,host:port") or a {@code dns:///} target:
 * round_robin over every address, a server reporting NOT_SERVING (warming up, draining) left out
 * of the rotation, and UNAVAILABLE retried on the idempotent calls only. Upsert, Delete, the
 * ingestion streams and collection changes are never retried: ingestion resumes through its own
 * acknowledgements. Scroll (the same cursor gives the same page) and FindDuplicates are reads and
 * are retried; Cluster is not: the policy is chosen per method, not per request, and a Cluster
 * with write_label rewrites payloads (the server's roles count it as a write), so a caller retries
 * a read-only Cluster itself. The Go and Python clients use the same service config.
 */
final class Balancing {
  static final String STATIC_SCHEME = "embedserve-static";

  private static final String[][] IDEMPOTENT = {
    {"embedserve.v1.EmbeddingService", "Embed"},
    {"embedserve.v1.EmbeddingService", "EmbedTokens"},
    {"embedserve.v1.EmbeddingService", "Tokenize"},
    {"embedserve.v1.EmbeddingService", "Similarity"},
    {"embedserve.v1.EmbeddingService", "GetModelInfo"},
    {"embedserve.v1.EmbeddingService", "Rerank"},
    {"embedserve.v1.VectorService", "Search"},
    {"embedserve.v1.VectorService", "Recommend"},
    {"embedserve.v1.VectorService", "Get"},
    {"embedserve.v1.VectorService", "Count"},
    {"embedserve.v1.VectorService", "ListCollections"},
    {"embedserve.v1.VectorService", "GetCollection"},
    {"embedserve.v1.VectorService", "Scroll"},
    {"embedserve.v1.VectorService", "FindDuplicates"},
    {"embedserve.v1.VectorService", "SearchBatch"},
    {"embedserve.v1.VectorService", "Facet"},
    {"embedserve.v1.VectorService", "ListAliases"},
  };

  static {
    NameResolverRegistry.getDefaultRegistry().register(new StaticResolverProvider());
  }

  private Balancing() {}

  /** Whether {@code target} names several servers: a comma-separated list or a dns target. */
  static boolean isBalanced(String target) {
    return target.contains(",") || target.startsWith("dns:");
  }

  /**
   * The channel target for {@code target}: a list becomes the static resolver's target. The list
   * is its URI's path, where the brackets of IPv6 addresses ("[::1]:50051") and the '%' of a zone
   * ("[fe80::1%eth0]") are illegal: they go percent-encoded, and {@link URI#getPath()} decodes
   * them. (Unencoded, grpc-java cannot parse the URI and looks for a resolver of the whole
   * string, which none serves.)
   */
  static String channelTarget(String target) {
    if (!target.contains(",") || target.contains(":///")) {
      return target;
    }
    String list =
        target.replace(" ", "").replace("%", "%25").replace("[", "%5B").replace("]", "%5D");
    return STATIC_SCHEME + ":///" + list;
  }

  /** The service config in grpc-java's map form (JSON numbers are doubles). */
  static Map<String, ?> serviceConfig() {
    List<Map<String, ?>> names = new ArrayList<>();
    for (String[] method : IDEMPOTENT) {
      names.add(Map.of("service", method[0], "method", method[1]));
    }
    Map<String, ?> retry =
        Map.of(
            "maxAttempts", 5.0,
            "initialBackoff", "0.1s",
            "maxBackoff", "1s",
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of(
        "loadBalancingConfig", List.of(Map.of("round_robin", Map.of())),
        "healthCheckConfig", Map.of("serviceName", ""),
        "methodConfig", List.of(Map.of("name", names, "retryPolicy", retry)));
  }

  /**
   * Serves the fixed address list of an {@code embedserve-static:///a:1,b:2} target (IPv6 ones as
   * {@code [::1]:1}, percent-encoded by {@link #channelTarget}).
   */
  static final class StaticResolverProvider extends NameResolverProvider {
    @Override
    protected boolean isAvailable() {
      return true;
    }

    @Override
    protected int priority() {
      return 4; // below dns (5), so plain "host:port" targets keep dns as their default
    }

    @Override
    public String getDefaultScheme() {
      return STATIC_SCHEME;
    }

    @Override
    public Collection<Class<? extends SocketAddress>> getProducedSocketAddressTypes() {
      return Collections.singleton(InetSocketAddress.class);
    }

    @Override
    public NameResolver newNameResolver(URI targetUri, NameResolver.Args args) {
      if (!STATIC_SCHEME.equals(targetUri.getScheme())) {
        return null;
      }
      List<EquivalentAddressGroup> groups = new ArrayList<>();
      String first = null;
      for (String part : targetUri.getPath().substring(1).split(",")) {
        if (part.isEmpty()) {
          continue;
        }
        int colon = part.lastIndexOf(':');
        if (colon < 0) {
          throw new IllegalArgumentException("target " + part + " needs a port (host:port)");
        }
        String host = part.substring(0, colon).replace("[", "").replace("]", "");
        int port = Integer.parseInt(part.substring(colon + 1));
        groups.add(new EquivalentAddressGroup(new InetSocketAddress(host, port)));
        first = first == null ? part : first;
      }
      if (groups.isEmpty()) {
        throw new IllegalArgumentException("target " + targetUri + " names no address");
      }
      String authority = first;
      return new NameResolver() {
        @Override
        public String getServiceAuthority() {
          return authority; // the name TLS checks: the first server's
        }

        @Override
        public void start(Listener2 listener) {
          listener.onResult(
              ResolutionResult.newBuilder()
                  .setAddresses(groups)
                  .setAttributes(Attributes.EMPTY)
                  .build());
        }

        @Override
        public void shutdown() {}
      };
    }
  }
}
