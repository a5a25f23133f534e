package dev.embedserve.examples;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.ids;
import static dev.embedserve.client.Vectors.limit;
import static dev.embedserve.client.Vectors.match;
import static dev.embedserve.client.Vectors.must;
import static dev.embedserve.client.Vectors.split;

import dev.embedserve.client.EmbedserveClient;
import dev.embedserve.client.EmbedserveClient.Hit;
import dev.embedserve.client.EmbedserveClient.HitGroup;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.Precision;
import dev.embedserve.v1.RecommendStrategy;
import dev.embedserve.v1.WriteOptions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Embeds texts with an embedserve server, once with a unary call (also as int8) and once through
 * a bidirectional stream, then ingests them into a temporary collection, searches it (also in groups),
 * asks for recommendations and stores a long text as passages.
 *
 * <pre>
 * mvn -q test-compile exec:java -Dexec.classpathScope=test \
 *   -Dexec.mainClass=dev.embedserve.examples.EmbedExample -Dexec.args="127.0.0.1:50051 hello"
 * </pre>
 *
 * <p>The code between the "snippet" markers is the one shown in clients/java/README.md.
 */
public final class EmbedExample {
  private EmbedExample() {}

  public static void main(String[] args) throws Exception {
    String target = args.length > 0 ? args[0] : "127.0.0.1:50051";
    List<String> texts =
        args.length > 1
            ? Arrays.asList(args).subList(1, args.length)
            : List.of("The cat sat on the mat.", "Vectors for everyone.");
    String apiKey = System.getenv("EMBEDSERVE_API_KEY");
    // snippet: connect
    try (EmbedserveClient client =
        EmbedserveClient.builder(target) // .tlsCaFile(Path.of("ca.pem"))
            .apiKey(apiKey)
            .timeout(Duration.ofSeconds(30))
            .build()) {
      // end snippet
      // snippet: embed
      List<float[]> vectors = client.embed(texts); // or client.embedAsync(texts)
      System.out.printf("%d vectors of %d dimensions%n", vectors.size(), vectors.get(0).length);
      // end snippet
      // snippet: quantized
      // int8: each vector times 127 over its largest |value|, rounded; PRECISION_UINT8 is int8 + 128
      // (read with Byte.toUnsignedInt); PRECISION_BINARY / PRECISION_UBINARY pack the sign bits,
      // eight dimensions to a byte. PRECISION_FLOAT32 throws IllegalArgumentException: use embed.
      byte[][] int8 = client.embedQuantized(texts, Precision.PRECISION_INT8); // options as for embed
      System.out.printf("%d int8 vectors of %d bytes%n", int8.length, int8[0].length);
      // end snippet
      // snippet: stream
      List<List<String>> batches = texts.stream().map(List::of).toList(); // any Iterable
      client.embedStream(batches, result ->
          System.out.printf("request %s: %d vectors%n", result.requestId(), result.vectors().size()));
      // end snippet

      String collection = "example-" + System.nanoTime();
      client.createCollection(collection);
      try {
        List<Document> docs = new ArrayList<>();
        for (int i = 0; i < texts.size(); i++) {
          docs.add(document(Integer.toString(i), texts.get(i), Map.of("lang", "en")));
        }
        // snippet: ingest
        // Any Iterable; acknowledged in order once durable (64 documents a message, 8 in flight);
        // returns the number acknowledged.
        client.ingest(collection, docs, WriteOptions.getDefaultInstance(), 64, 8, ack ->
            System.out.printf("batch %s durable: %d documents in total%n", ack.response().getBatchId(), ack.totalAcknowledged()));
        // end snippet
        // snippet: search
        List<Hit> hits = client.search(collection, texts.get(0), must(match("lang", "en")), limit(3));
        hits.forEach(hit -> System.out.printf("search: %s %.3f %s%n", hit.id(), hit.score(), hit.payload().get("lang")));
        // end snippet
        // snippet: groups
        // The best 2 hits per value of the payload field "lang"; the limit counts groups.
        List<HitGroup> groups = client.searchGroups(collection, texts.get(0), "lang", 2, null, limit(3));
        groups.forEach(group -> System.out.printf("group %s: %s%n", group.key(), group.hits().stream().map(Hit::id).toList()));
        // end snippet
        // snippet: recommend
        // Like document 0 (Vectors.id/textExample/vectorExample); never returns the examples.
        List<Hit> recommended = client.recommend(collection, ids("0"), List.of(),
            RecommendStrategy.RECOMMEND_STRATEGY_BEST_SCORE, null, limit(3));
        recommended.forEach(hit -> System.out.printf("recommend: %s %.3f%n", hit.id(), hit.score()));
        // end snippet
        // snippet: split
        // A long text as passages of 64 tokens, each repeating 8 of the one before: points "essay#0",
        // "essay#1", ... with its payload plus doc_id, passage, passages and span ([start, end) in
        // the text). upsert counts points; ingest(collection, docs, split(64, 8), ...) documents.
        String essay = (String.join(" ", texts) + ". ").repeat(40);
        long passages = client.upsert(collection, List.of(document("essay", essay, Map.of("lang", "en"))), split(64, 8));
        // Grouped by doc_id: one answer per document split into passages, its best 2 passages.
        HitGroup best = client.searchGroups(collection, texts.get(0), "doc_id", 2, null, limit(3)).get(0);
        System.out.printf("%d passages; group %s: %s%n", passages, best.key(), best.hits().stream().map(Hit::id).toList());
        // end snippet
      } finally {
        client.deleteCollection(collection);
      }
    }
  }
}
