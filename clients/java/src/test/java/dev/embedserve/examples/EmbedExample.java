package dev.embedserve.examples;

import dev.embedserve.client.EmbedserveClient;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

/**
 * Embeds texts with an embedserve server, once with a unary call and once through a
 * bidirectional stream.
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
      // snippet: stream
      List<List<String>> batches = texts.stream().map(List::of).toList(); // any Iterable
      client.embedStream(batches, result ->
          System.out.printf("request %s: %d vectors%n", result.requestId(), result.vectors().size()));
      // end snippet
    }
  }
}
