package dev.embedserve.client;

import dev.embedserve.v1.Alias;
import dev.embedserve.v1.ClusterRequest;
import dev.embedserve.v1.ClusterResponse;
import dev.embedserve.v1.CollectionConfig;
import dev.embedserve.v1.CollectionInfo;
import dev.embedserve.v1.CountRequest;
import dev.embedserve.v1.CreateCollectionRequest;
import dev.embedserve.v1.DeleteCollectionRequest;
import dev.embedserve.v1.DeleteRequest;
import dev.embedserve.v1.Document;
import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.EmbedRequest;
import dev.embedserve.v1.EmbedResponse;
import dev.embedserve.v1.EmbedStreamRequest;
import dev.embedserve.v1.EmbedStreamResponse;
import dev.embedserve.v1.Embedding;
import dev.embedserve.v1.EmbeddingServiceGrpc;
import dev.embedserve.v1.Example;
import dev.embedserve.v1.FacetRequest;
import dev.embedserve.v1.FacetValue;
import dev.embedserve.v1.Filter;
import dev.embedserve.v1.FindDuplicatesRequest;
import dev.embedserve.v1.FindDuplicatesResponse;
import dev.embedserve.v1.GetCollectionRequest;
import dev.embedserve.v1.GetModelInfoRequest;
import dev.embedserve.v1.GetModelInfoResponse;
import dev.embedserve.v1.GetRequest;
import dev.embedserve.v1.GroupBy;
import dev.embedserve.v1.IngestStreamRequest;
import dev.embedserve.v1.IngestStreamResponse;
import dev.embedserve.v1.ListAliasesRequest;
import dev.embedserve.v1.ListCollectionsRequest;
import dev.embedserve.v1.PayloadIndexKind;
import dev.embedserve.v1.Precision;
import dev.embedserve.v1.Proximity;
import dev.embedserve.v1.QueryParams;
import dev.embedserve.v1.Recency;
import dev.embedserve.v1.RecommendRequest;
import dev.embedserve.v1.RecommendStrategy;
import dev.embedserve.v1.RerankRequest;
import dev.embedserve.v1.RerankResult;
import dev.embedserve.v1.ScoredDocument;
import dev.embedserve.v1.ScrollOrder;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.ScrollResponse;
import dev.embedserve.v1.SearchBatchRequest;
import dev.embedserve.v1.SearchMode;
import dev.embedserve.v1.SearchRequest;
import dev.embedserve.v1.SearchRerank;
import dev.embedserve.v1.StoredDocument;
import dev.embedserve.v1.UpdateAliasesRequest;
import dev.embedserve.v1.UpdateCollectionRequest;
import dev.embedserve.v1.UpdatePayloadRequest;
import dev.embedserve.v1.UpsertRequest;
import dev.embedserve.v1.Vector;
import dev.embedserve.v1.VectorServiceGrpc;
import dev.embedserve.v1.WriteOptions;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ChannelCredentials;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.Deadline;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.TlsChannelCredentials;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.MetadataUtils;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * Thin client for the embedserve gRPC server.
 *
 * <pre>{@code
 * try (EmbedserveClient client = EmbedserveClient.builder("127.0.0.1:50051").build()) {
 *   List<float[]> vectors = client.embed(List.of("first text", "second text"));
 * }
 * }</pre>
 *
 * <p>The VectorService calls are on the same client: collections ({@link #createCollection},
 * ...), acknowledged streaming ingestion ({@link #ingest}), {@link #search}, {@link
 * #searchGroups}, {@link #recommend}, {@link #recommendGroups}, {@link #get}, {@link #delete} and
 * {@link #count}, and export and analysis: {@link #scroll} (one page), {@link #scrollAll} (every
 * document, following the cursor), {@link #cluster} and {@link #findDuplicates}; {@link Vectors}
 * builds their documents, examples and filters.
 *
 * <p>Failed calls throw {@link StatusRuntimeException} carrying the server's status
 * ({@code INVALID_ARGUMENT}, {@code DEADLINE_EXCEEDED}, ...). Unary calls get the client's
 * default deadline ({@link Builder#timeout}); streams are not bounded by it. The client is
 * thread-safe; {@link #withTimeout} views share its channel. {@link #stub()} exposes the
 * generated stub (with the API key and default deadline) for the calls not wrapped here, {@link
 * #vectorStub()} the VectorService one.
 *
 * <p>The streams ({@link #ingest}, {@link #embedStream}, {@link #embedQuantizedStream}) run in
 * the caller's {@link io.grpc.Context}, which bounds or cancels them: {@code
 * Context.current().withDeadlineAfter(10, TimeUnit.MINUTES, scheduler).run(() ->
 * client.ingest(...))} throws {@code DEADLINE_EXCEEDED} when the deadline passes, and a {@code
 * withCancellation()} context {@code CANCELLED} when cancelled, even while the iterator waits for
 * its next item; interrupting the calling thread ends them with {@code CANCELLED} too.
 *
 * <p>Checks made before sending: values that the server would refuse (no texts, a document or
 * payload that cannot be sent as it is, a negative count, a request whose {@code group_by} does
 * not suit the method) throw {@link StatusRuntimeException} with {@code INVALID_ARGUMENT}, as the
 * server's answer would, so that one handler covers both; arguments that select no valid call (a
 * float precision for the quantized calls, {@code descending} without {@code orderBy}, a filter
 * builder's missing or impossible bounds, a batch size or in-flight bound below 1, which the
 * server never sees) throw {@link IllegalArgumentException}. A negative count is any int below 0
 * given to a count of the client's methods or of the requests that its search, recommend, scroll
 * and rerank methods take ({@code QueryParams} limit and offset included): the proto fields are
 * uint32, where -1 would arrive as 4294967295. A string that is no text (holding half of a
 * surrogate pair, which protobuf would send as {@code '?'}) is refused too, in any request on the
 * client's channel ({@link #stub()}'s too): "text 0 holds &#92;ud800 at character 4, half of a
 * surrogate pair and not a character" for {@link #embed}'s texts, "batch 2: text 1 holds ..."
 * for a stream's (thrown once the batches before it are answered), else the field by its path in
 * the request ("collection holds ...", "filter.must[0].match.text holds ...").
 */
public final class EmbedserveClient implements AutoCloseable {
  /** Default deadline of unary calls. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(300);
  /** Texts per request when {@link #embed} splits a large input. */
  public static final int DEFAULT_BATCH_SIZE = 256;
  /**
   * Requests outstanding at once in {@link #embed}, {@link #embedStream} and {@link
   * #embedQuantizedStream}.
   */
  public static final int DEFAULT_MAX_IN_FLIGHT = 4;
  /** Documents per message in {@link #ingest}. */
  public static final int DEFAULT_INGEST_BATCH_SIZE = 64;
  /** Messages awaiting their acknowledgement in {@link #ingest}. */
  public static final int DEFAULT_INGEST_MAX_IN_FLIGHT = 8;

  private static final int MAX_MESSAGE_BYTES = 256 << 20;
  /** The quantized rows of a float32 {@link StreamResult}: none. */
  private static final byte[][] NO_QUANTIZED = new byte[0][];
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
  private static final OrderedStream.Words EMBED_STREAM_WORDS =
      new OrderedStream.Words(
          "stream", "request_id", "the answer to request", "an answer to no request");
  private static final OrderedStream.Words INGEST_STREAM_WORDS =
      new OrderedStream.Words(
          "ingest stream",
          "batch_id",
          "the acknowledgement of batch",
          "an acknowledgement of no batch");

  private final ManagedChannel channel;
  private final Channel calls;
  private final Duration timeout;
  private final String apiKey;
  private final EmbeddingServiceGrpc.EmbeddingServiceBlockingStub blocking;
  private final EmbeddingServiceGrpc.EmbeddingServiceStub async;
  private final HealthGrpc.HealthBlockingStub health;
  private final VectorServiceGrpc.VectorServiceBlockingStub vectors;
  private final VectorServiceGrpc.VectorServiceStub vectorsAsync;

  private EmbedserveClient(ManagedChannel channel, String apiKey, Duration timeout) {
    this.channel = channel;
    this.apiKey = apiKey;
    this.timeout = timeout;
    List<ClientInterceptor> interceptors = new ArrayList<>();
    interceptors.add(new DefaultDeadline(timeout));
    interceptors.add(new Unicode.Check()); // a string that is no text is refused before sending
    if (apiKey != null) {
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + apiKey);
      interceptors.add(MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    this.calls = ClientInterceptors.intercept(channel, interceptors);
    this.blocking = EmbeddingServiceGrpc.newBlockingStub(calls);
    this.async = EmbeddingServiceGrpc.newStub(calls);
    this.health = HealthGrpc.newBlockingStub(calls);
    this.vectors = VectorServiceGrpc.newBlockingStub(calls);
    this.vectorsAsync = VectorServiceGrpc.newStub(calls);
  }

  /**
   * Starts configuring a client for {@code target} ("host:port" or any gRPC target URI). Several
   * servers ("host:port,host:port") or a {@code dns:///} target get round_robin balancing, and
   * idempotent calls (Embed, Search, Get, Count, Scroll, ...) are retried on UNAVAILABLE.
   */
  public static Builder builder(String target) {
    return new Builder(target);
  }

  /** A view of this client whose unary calls get {@code timeout} as default deadline. */
  public EmbedserveClient withTimeout(Duration timeout) {
    return new EmbedserveClient(channel, apiKey, timeout);
  }

  /**
   * The generated stub on this client's channel (API key and default deadline applied). Its
   * deadline is its own calls': {@link #embedStream} and {@link #ingest} are bounded by an {@link
   * io.grpc.Context} instead (see the class documentation).
   */
  public EmbeddingServiceGrpc.EmbeddingServiceBlockingStub stub() {
    return blocking;
  }

  /** The generated VectorService stub on this client's channel (API key, default deadline). */
  public VectorServiceGrpc.VectorServiceBlockingStub vectorStub() {
    return vectors;
  }

  /** The channel with this client's interceptors, to build other services' stubs on. */
  public Channel channel() {
    return calls;
  }

  /** What is being served: model id, dimensions, max tokens, limits. */
  public GetModelInfoResponse modelInfo() {
    return blocking.getModelInfo(GetModelInfoRequest.getDefaultInstance());
  }

  /** The standard health status of the server. */
  public ServingStatus health() {
    return health
        .withDeadlineAfter(5, TimeUnit.SECONDS)
        .check(HealthCheckRequest.getDefaultInstance())
        .getStatus();
  }

  /** Blocks until health reports SERVING (the model is loaded and warm). */
  public void waitUntilServing(Duration limit) throws InterruptedException {
    long end = System.nanoTime() + limit.toNanos();
    Object last = null;
    while (true) {
      try {
        ServingStatus state = health();
        if (state == ServingStatus.SERVING) {
          return;
        }
        last = state;
      } catch (StatusRuntimeException e) {
        last = e.getStatus();
      }
      if (System.nanoTime() > end) {
        throw new IllegalStateException("server not SERVING after " + limit + " (last: " + last + ")");
      }
      Thread.sleep(200);
    }
  }

  /** One vector per text, in input order, with the model's default options. */
  public List<float[]> embed(List<String> texts) {
    return embed(texts, EmbedOptions.getDefaultInstance());
  }

  /**
   * One vector per text, in input order. Inputs longer than {@link #DEFAULT_BATCH_SIZE} are sent
   * as several requests, {@link #DEFAULT_MAX_IN_FLIGHT} at a time, under one deadline.
   *
   * @throws StatusRuntimeException with the server's status when a request fails
   */
  public List<float[]> embed(List<String> texts, EmbedOptions options) {
    return await(embedAsync(texts, options));
  }

  /**
   * {@link #embedQuantized(List, Precision, EmbedOptions)} with the model's default options.
   *
   * @throws IllegalArgumentException for {@code PRECISION_FLOAT32} or {@code
   *     PRECISION_UNSPECIFIED}: floats come from {@link #embed}
   */
  public byte[][] embedQuantized(List<String> texts, Precision precision) {
    return embedQuantized(texts, precision, EmbedOptions.getDefaultInstance());
  }

  /**
   * One vector per text, in input order, in fewer bits: the server's {@code
   * Embedding.quantized} bytes as they come. {@code PRECISION_INT8}: one signed byte per
   * dimension, the vector times 127 over its largest absolute value, rounded ({@code
   * PRECISION_UINT8}: the same plus 128, read with {@link Byte#toUnsignedInt}). {@code
   * PRECISION_BINARY}: one bit per dimension, 1 where the value is above 0, eight to a byte with
   * the first dimension in the highest bit, the last byte padded with 0 bits, each byte minus
   * 128 as a signed byte ({@code PRECISION_UBINARY}: the same bits unsigned, to compare by
   * Hamming distance), so a row is (dimensions + 7) / 8 bytes. Inputs longer than {@link
   * #DEFAULT_BATCH_SIZE} are sent as several requests, {@link #DEFAULT_MAX_IN_FLIGHT} at a time,
   * under one deadline.
   *
   * @throws IllegalArgumentException for {@code PRECISION_FLOAT32} or {@code
   *     PRECISION_UNSPECIFIED}: floats come from {@link #embed}
   * @throws StatusRuntimeException with the server's status when a request fails ({@code
   *     UNIMPLEMENTED} when the server answers floats: it predates quantized output)
   */
  public byte[][] embedQuantized(List<String> texts, Precision precision, EmbedOptions options) {
    boolean packed = packedBits(precision, "embed");
    List<byte[]> rows =
        await(
            embedBatches(
                texts,
                options,
                precision,
                DEFAULT_BATCH_SIZE,
                DEFAULT_MAX_IN_FLIGHT,
                response ->
                    quantizedOf(response.getEmbeddingsList(), response.getDimensions(), packed)));
    return rows.toArray(new byte[0][]);
  }

  /**
   * Whether {@code precision}, one of the quantized ones, packs one bit per dimension (BINARY,
   * UBINARY) rather than one byte (INT8, UINT8).
   *
   * @param floats the method that gives float32 vectors, named in the refusal
   * @throws IllegalArgumentException for {@code PRECISION_FLOAT32} or {@code
   *     PRECISION_UNSPECIFIED}
   */
  private static boolean packedBits(Precision precision, String floats) {
    Objects.requireNonNull(precision, "precision");
    return switch (precision) {
      case PRECISION_INT8, PRECISION_UINT8 -> false;
      case PRECISION_BINARY, PRECISION_UBINARY -> true;
      default ->
          throw new IllegalArgumentException(
              "precision must be PRECISION_INT8, PRECISION_UINT8, PRECISION_BINARY or"
                  + " PRECISION_UBINARY ("
                  + floats
                  + " gives float32 vectors); got "
                  + precision);
    };
  }

  /** The result of an embedding future, its failure rethrown as a StatusRuntimeException. */
  private static <T> T await(CompletableFuture<T> result) {
    try {
      return result.get();
    } catch (InterruptedException e) {
      result.cancel(true);
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").withCause(e).asRuntimeException();
    } catch (ExecutionException e) {
      Throwable cause = e.getCause();
      if (cause instanceof StatusRuntimeException sre) {
        // Rethrow a fresh exception so the stack trace shows the caller.
        throw new StatusRuntimeException(sre.getStatus(), sre.getTrailers());
      }
      throw Status.fromThrowable(cause).asRuntimeException();
    }
  }

  /** {@link #embedAsync(List, EmbedOptions)} with the model's default options. */
  public CompletableFuture<List<float[]>> embedAsync(List<String> texts) {
    return embedAsync(texts, EmbedOptions.getDefaultInstance());
  }

  /**
   * Embeds without blocking. The future fails with a {@link StatusRuntimeException}; cancelling
   * it cancels the outstanding requests.
   */
  public CompletableFuture<List<float[]>> embedAsync(List<String> texts, EmbedOptions options) {
    return embedAsync(texts, options, DEFAULT_BATCH_SIZE, DEFAULT_MAX_IN_FLIGHT);
  }

  /**
   * As {@link #embedAsync(List, EmbedOptions)}, with explicit batch size and concurrency.
   *
   * @throws IllegalArgumentException for a {@code batchSize} or {@code maxInFlight} below 1
   */
  public CompletableFuture<List<float[]>> embedAsync(
      List<String> texts, EmbedOptions options, int batchSize, int maxInFlight) {
    requireAtLeastOne("batchSize", batchSize);
    requireAtLeastOne("maxInFlight", maxInFlight);
    return embedBatches(
        texts,
        options,
        Precision.PRECISION_UNSPECIFIED,
        batchSize,
        maxInFlight,
        response -> vectorsOf(response.getEmbeddingsList()));
  }

  /**
   * Sends {@code texts} as Embed requests of {@code batchSize}, {@code maxInFlight} at a time,
   * and joins each answer's {@code rows} in input order. {@code rows} may throw a
   * StatusRuntimeException, which fails the result and cancels the other requests.
   */
  private <T> CompletableFuture<List<T>> embedBatches(
      List<String> texts,
      EmbedOptions options,
      Precision precision,
      int batchSize,
      int maxInFlight,
      Function<EmbedResponse, List<T>> rows) {
    Objects.requireNonNull(options, "options");
    CompletableFuture<List<T>> result = new CompletableFuture<>();
    if (texts.isEmpty()) {
      result.completeExceptionally(
          Status.INVALID_ARGUMENT.withDescription("texts must not be empty").asRuntimeException());
      return result;
    }
    try {
      Unicode.requireTexts("", texts); // "text 300 holds ...": its place in texts
    } catch (StatusRuntimeException e) {
      result.completeExceptionally(e);
      return result;
    }
    List<List<String>> chunks = partition(texts, batchSize);
    EmbeddingServiceGrpc.EmbeddingServiceStub stub =
        timeout == null || timeout.isZero()
            ? async
            : async.withDeadline(Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS));
    AtomicReferenceArray<List<T>> parts = new AtomicReferenceArray<>(chunks.size());
    AtomicInteger next = new AtomicInteger();
    AtomicInteger remaining = new AtomicInteger(chunks.size());
    Set<ClientCallStreamObserver<?>> running = ConcurrentHashMap.newKeySet();
    Runnable launch =
        new Runnable() {
          @Override
          public void run() {
            int index = next.getAndIncrement();
            if (index >= chunks.size() || result.isDone()) {
              return;
            }
            EmbedRequest request =
                EmbedRequest.newBuilder()
                    .addAllInputs(chunks.get(index))
                    .setOptions(options)
                    .setPrecision(precision)
                    .build();
            try {
              start(index, request);
            } catch (RuntimeException e) {
              // Another request's failure may cancel this call between its start and its message
              // (grpc-java then throws "call was cancelled"): the result already holds that
              // failure, and this completion is a no-op. Anything else is this call's own.
              result.completeExceptionally(
                  e instanceof StatusRuntimeException ? e : Status.fromThrowable(e).asRuntimeException());
            }
          }

          private void start(int index, EmbedRequest request) {
            Runnable launchNext = this;
            stub.embed(
                request,
                new ClientResponseObserver<EmbedRequest, EmbedResponse>() {
                  private ClientCallStreamObserver<EmbedRequest> call;

                  @Override
                  public void beforeStart(ClientCallStreamObserver<EmbedRequest> call) {
                    this.call = call;
                    running.add(call);
                  }

                  @Override
                  public void onNext(EmbedResponse response) {
                    try {
                      parts.set(index, rows.apply(response));
                    } catch (StatusRuntimeException e) {
                      if (result.completeExceptionally(e)) {
                        running.forEach(other -> other.cancel("an answer was refused", null));
                      }
                    }
                  }

                  @Override
                  public void onError(Throwable t) {
                    running.remove(call);
                    if (result.completeExceptionally(t)) {
                      running.forEach(other -> other.cancel("another request failed", null));
                    }
                  }

                  @Override
                  public void onCompleted() {
                    running.remove(call);
                    if (result.isDone()) {
                      return;
                    }
                    if (remaining.decrementAndGet() == 0) {
                      List<T> all = new ArrayList<>(texts.size());
                      for (int i = 0; i < parts.length(); i++) {
                        all.addAll(parts.get(i));
                      }
                      result.complete(all);
                    } else {
                      launchNext.run();
                    }
                  }
                });
          }
        };
    for (int i = 0; i < Math.min(maxInFlight, chunks.size()); i++) {
      launch.run();
    }
    result.whenComplete(
        (value, error) -> {
          if (result.isCancelled()) {
            running.forEach(call -> call.cancel("cancelled by the caller", null));
          }
        });
    return result;
  }

  /** {@link #embedStream(Iterable, EmbedOptions, int, Consumer)} with default options. */
  public long embedStream(Iterable<? extends List<String>> batches, Consumer<StreamResult> handler) {
    return embedStream(batches, EmbedOptions.getDefaultInstance(), DEFAULT_MAX_IN_FLIGHT, handler);
  }

  /**
   * Sends batches over one bidirectional EmbedStream call and hands each answer to {@code
   * handler}, in input order, on the calling thread. At most {@code maxInFlight} batches await
   * their answer; the next batch is taken from {@code batches} only when a slot is free, so a
   * slow or unbounded producer is fine. Each request carries its batch index as request_id; an
   * answer with another id fails the call.
   *
   * <p>{@code batches} is read on a thread of its own (a daemon), so answers, failures and the
   * caller's {@link io.grpc.Context} deadline or cancellation are acted on while it waits for its
   * next batch. When the stream ends early, that thread is interrupted; an iterator blocked in a
   * way an interrupt does not end keeps it until it returns, and is then asked for nothing more.
   *
   * @return the number of batches sent
   * @throws StatusRuntimeException with the server's status when the stream fails, {@code
   *     DEADLINE_EXCEEDED} or {@code CANCELLED} when the caller's {@link io.grpc.Context} ends it
   *     or {@code CANCELLED} when the calling thread is interrupted; an exception thrown by {@code
   *     handler} cancels the stream and propagates unchanged, and one thrown by the iterator
   *     does too, once the batches sent before it are answered
   * @throws IllegalArgumentException for a {@code maxInFlight} below 1, before anything is sent
   */
  public long embedStream(
      Iterable<? extends List<String>> batches,
      EmbedOptions options,
      int maxInFlight,
      Consumer<StreamResult> handler) {
    return streamEmbed(
        batches,
        options,
        Precision.PRECISION_UNSPECIFIED,
        maxInFlight,
        handler,
        (index, id, response) ->
            new StreamResult(
                index, id, vectorsOf(response.getEmbeddingsList()), NO_QUANTIZED, response));
  }

  /**
   * {@link #embedQuantizedStream(Iterable, Precision, EmbedOptions, int, Consumer)} with default
   * options.
   *
   * @throws IllegalArgumentException for {@code PRECISION_FLOAT32} or {@code
   *     PRECISION_UNSPECIFIED}: floats come from {@link #embedStream}
   */
  public long embedQuantizedStream(
      Iterable<? extends List<String>> batches,
      Precision precision,
      Consumer<StreamResult> handler) {
    return embedQuantizedStream(
        batches, precision, EmbedOptions.getDefaultInstance(), DEFAULT_MAX_IN_FLIGHT, handler);
  }

  /**
   * {@link #embedStream(Iterable, EmbedOptions, int, Consumer)} with each vector in fewer bits:
   * every request carries {@code precision}, and each result's {@link StreamResult#quantized()}
   * holds one row per text of its batch, in order, the bytes as {@link #embedQuantized(List,
   * Precision, EmbedOptions)} describes them ({@link StreamResult#vectors()} is empty).
   *
   * @return the number of batches sent
   * @throws IllegalArgumentException for {@code PRECISION_FLOAT32} or {@code
   *     PRECISION_UNSPECIFIED}, or a {@code maxInFlight} below 1, before anything is sent: floats
   *     come from {@link #embedStream}
   * @throws StatusRuntimeException with the server's status when the stream fails ({@code
   *     UNIMPLEMENTED} when the server answers floats: it predates quantized output); an
   *     exception thrown by {@code handler} cancels the stream and propagates unchanged
   */
  public long embedQuantizedStream(
      Iterable<? extends List<String>> batches,
      Precision precision,
      EmbedOptions options,
      int maxInFlight,
      Consumer<StreamResult> handler) {
    boolean packed = packedBits(precision, "embedStream");
    return streamEmbed(
        batches,
        options,
        precision,
        maxInFlight,
        handler,
        (index, id, response) ->
            new StreamResult(
                index,
                id,
                List.of(),
                quantizedOf(response.getEmbeddingsList(), response.getDimensions(), packed)
                    .toArray(new byte[0][]),
                response));
  }

  /** Makes the result of one answer of {@link #streamEmbed}, throwing when it is refused. */
  private interface StreamRows {
    StreamResult of(long index, String id, EmbedStreamResponse response);
  }

  /**
   * One EmbedStream call sending {@code batches} in requests of {@code precision}, each answer
   * made into a result by {@code rows} and handed to {@code handler} in order.
   */
  private long streamEmbed(
      Iterable<? extends List<String>> batches,
      EmbedOptions options,
      Precision precision,
      int maxInFlight,
      Consumer<StreamResult> handler,
      StreamRows rows) {
    Objects.requireNonNull(options, "options");
    requireAtLeastOne("maxInFlight", maxInFlight);
    OrderedStream<List<String>, EmbedStreamRequest, EmbedStreamResponse> stream =
        new OrderedStream<>(
            async::embedStream,
            (index, id, batch) -> {
              // thrown, as the iterator's exceptions are, once the batches before it are answered
              Unicode.requireTexts("batch " + index + ": ", batch);
              return EmbedStreamRequest.newBuilder()
                  .setRequestId(id)
                  .addAllInputs(batch)
                  .setOptions(options)
                  .setPrecision(precision)
                  .build();
            },
            EmbedStreamResponse::getRequestId,
            EMBED_STREAM_WORDS);
    return stream.run(
        batches.iterator(),
        maxInFlight,
        (index, id, batch, response) -> handler.accept(rows.of(index, id, response)));
  }

  /**
   * Every document scored against {@code query} by the server's reranker (a cross-encoder that
   * reads the query and each document together), best first, ties in request order.
   *
   * @throws StatusRuntimeException {@code FAILED_PRECONDITION} when the server runs no reranker
   *     ({@link #modelInfo()} has none); {@code INVALID_ARGUMENT} for no documents
   */
  public List<Ranked> rerank(String query, List<String> documents) {
    return rerank(query, documents, 0, false, false);
  }

  /**
   * As {@link #rerank(String, List)}, keeping the best {@code topN} documents (0: all), with the
   * reranker's raw logits instead of its scores when {@code rawScores} (the scores are the logits
   * through its activation, {@code modelInfo().getReranker().getActivation()}: a sigmoid, 0 to 1,
   * for most rerankers), and each document's text in its result when {@code returnDocuments}.
   */
  public List<Ranked> rerank(
      String query, List<String> documents, int topN, boolean rawScores, boolean returnDocuments) {
    return rerank(
        RerankRequest.newBuilder()
            .setQuery(query)
            .addAllDocuments(documents)
            .setTopN(topN)
            .setRawScores(rawScores)
            .setReturnDocuments(returnDocuments)
            .build());
  }

  /**
   * Any rerank request ({@code overflow} included: {@code CHUNK} reads a long document in windows
   * and scores it by its best one, {@code ERROR} refuses it instead of cutting it).
   */
  public List<Ranked> rerank(RerankRequest request) {
    Vectors.requireCount("topN", request.getTopN());
    List<RerankResult> results = blocking.rerank(request).getResultsList();
    List<Ranked> ranked = new ArrayList<>(results.size());
    for (RerankResult result : results) {
      ranked.add(
          new Ranked(
              result.getIndex(),
              result.getScore(),
              request.getReturnDocuments() ? result.getDocument() : null));
    }
    return Collections.unmodifiableList(ranked);
  }

  // ---- VectorService -------------------------------------------------------------------------

  /**
   * Creates a collection with the server's defaults (the model's width, the distance matching
   * its similarity function).
   */
  public CollectionInfo createCollection(String name) {
    return createCollection(name, CollectionConfig.getDefaultInstance());
  }

  /** Creates a collection; an existing name fails with the server's status. */
  public CollectionInfo createCollection(String name, CollectionConfig config) {
    return vectors
        .createCollection(CreateCollectionRequest.newBuilder().setName(name).setConfig(config).build())
        .getCollection();
  }

  /** The names of all collections. */
  public List<String> listCollections() {
    return vectors.listCollections(ListCollectionsRequest.getDefaultInstance()).getNamesList();
  }

  /**
   * A collection's settings, point count, aliases and the model that created it ({@code
   * getModelId}, {@code getModelFingerprint}); {@code NOT_FOUND} when missing. Given an alias, it
   * answers with the collection's own name.
   */
  public CollectionInfo getCollection(String name) {
    return vectors.getCollection(GetCollectionRequest.newBuilder().setName(name).build()).getCollection();
  }

  /**
   * Changes what needs no new vectors and returns the collection's settings: payload indexes added
   * (the documents already stored are indexed; a field indexed as another kind is indexed again as
   * this one) or dropped, and the HNSW beam of searches that do not set one ({@code hnsw_ef}).
   * Nothing is embedded again.
   *
   * @throws StatusRuntimeException {@code NOT_FOUND} for a missing collection; {@code
   *     INVALID_ARGUMENT} for an index to drop that does not exist, a field both added and
   *     dropped, or an empty change
   */
  public CollectionInfo updateCollection(UpdateCollectionRequest request) {
    return vectors.updateCollection(request).getCollection();
  }

  /** Indexes a payload field of a collection, the documents already stored included. */
  public CollectionInfo addPayloadIndex(String collection, String key, PayloadIndexKind kind) {
    return updateCollection(
        UpdateCollectionRequest.newBuilder().setName(collection).putAddPayloadIndexes(key, kind).build());
  }

  /** Removes the payload index of a field ({@code INVALID_ARGUMENT} when it has none). */
  public CollectionInfo dropPayloadIndex(String collection, String key) {
    return updateCollection(
        UpdateCollectionRequest.newBuilder().setName(collection).addDropPayloadIndexes(key).build());
  }

  /**
   * Deletes a collection, its documents and its aliases. An alias's name is refused ({@code
   * FAILED_PRECONDITION}): delete the alias, or the collection it names.
   */
  public void deleteCollection(String name) {
    vectors.deleteCollection(DeleteCollectionRequest.newBuilder().setName(name).build());
  }

  /**
   * Points each alias of {@code set} at its collection (new, or moved) and deletes the aliases in
   * {@code delete}. Every call that names a collection also takes an alias of it, so readers keep
   * one name while the collection behind it is rebuilt and swapped; the whole change is checked
   * before any of it is made, so a swap never half happens.
   *
   * @throws StatusRuntimeException {@code ALREADY_EXISTS} for an alias named like a collection;
   *     {@code NOT_FOUND} for a missing collection, or an alias to delete that does not exist;
   *     {@code INVALID_ARGUMENT} for a target that is itself an alias, an invalid name or an
   *     empty change
   */
  public void updateAliases(Map<String, String> set, List<String> delete) {
    vectors.updateAliases(
        UpdateAliasesRequest.newBuilder().putAllSet(set).addAllDelete(delete).build());
  }

  /** Every alias, sorted by alias. */
  public List<Alias> listAliases() {
    return listAliases("");
  }

  /** The aliases of a collection (by its name or one of its aliases), sorted by alias. */
  public List<Alias> listAliases(String collection) {
    return vectors
        .listAliases(ListAliasesRequest.newBuilder().setCollection(collection).build())
        .getAliasesList();
  }

  /**
   * Writes documents in one call, returning once they are durable; the same id overwrites.
   *
   * @return the number of points written: one per document
   */
  public long upsert(String collection, List<Document> documents) {
    return upsert(collection, documents, WriteOptions.getDefaultInstance());
  }

  /**
   * As {@link #upsert(String, List)}, with embedding options, {@code store_text} and {@code split}
   * (text documents stored as passages: {@link Vectors#split(int, int)}).
   *
   * @return the number of points written: one per document, or per passage when split
   */
  public long upsert(String collection, List<Document> documents, WriteOptions options) {
    return vectors
        .upsert(
            UpsertRequest.newBuilder()
                .setCollection(collection)
                .addAllDocuments(documents)
                .setOptions(options)
                .build())
        .getUpserted();
  }

  /**
   * Streams documents into a collection with the defaults ({@link #DEFAULT_INGEST_BATCH_SIZE}
   * per message, {@link #DEFAULT_INGEST_MAX_IN_FLIGHT} in flight).
   *
   * @return the number of documents acknowledged (durable)
   */
  public long ingest(String collection, Iterable<Document> documents) {
    return ingest(
        collection,
        documents,
        WriteOptions.getDefaultInstance(),
        DEFAULT_INGEST_BATCH_SIZE,
        DEFAULT_INGEST_MAX_IN_FLIGHT,
        ack -> {});
  }

  /**
   * Streams documents into a collection over one bidirectional IngestStream call. Documents are
   * sent in messages of {@code batchSize}; at most {@code maxInFlight} messages await their
   * acknowledgement, and the next documents are taken from {@code documents} only when a slot is
   * free (a slow or unbounded producer is fine; a blocking iterator is a natural queue; an
   * {@code Iterator<Document> it} is passed as {@code () -> it}). Each
   * acknowledgement is handed to {@code onAck} in order, on the calling thread, once the server
   * has made its documents durable; its batch_id and ids are checked against what was sent.
   * With {@code split} in {@code options} ({@link Vectors#split(int, int)}) each text document is
   * stored as passages; acknowledgements still name and count documents.
   *
   * <p>{@code documents} is read on a thread of its own (a daemon), so acknowledgements, failures
   * and the caller's {@link io.grpc.Context} deadline or cancellation are acted on while it waits
   * for its next document. When the stream ends early, that thread is interrupted; an iterator
   * blocked in a way an interrupt does not end keeps it until it returns, and is then asked for
   * nothing more.
   *
   * <p>On failure, documents of unacknowledged messages may or may not have been written;
   * ingesting them again is safe (the same id overwrites). The stream has no default deadline:
   * bound it with an {@link io.grpc.Context} (see the class documentation).
   *
   * @return the number of documents acknowledged (durable)
   * @throws StatusRuntimeException with the server's status ({@code NOT_FOUND} for a missing
   *     collection, {@code UNAVAILABLE} when the server or the vector store cannot be reached,
   *     ...), {@code DEADLINE_EXCEEDED} or {@code CANCELLED} when the caller's {@link
   *     io.grpc.Context} ends it, or {@code CANCELLED} when the calling thread is interrupted; an
   *     exception thrown by {@code onAck} cancels the stream and propagates unchanged, and one
   *     thrown by the iterator does too, once the messages sent before it are acknowledged
   * @throws IllegalArgumentException for a {@code batchSize} or {@code maxInFlight} below 1,
   *     before anything is sent
   */
  public long ingest(
      String collection,
      Iterable<Document> documents,
      WriteOptions options,
      int batchSize,
      int maxInFlight,
      Consumer<IngestAck> onAck) {
    Objects.requireNonNull(options, "options");
    Objects.requireNonNull(onAck, "onAck");
    requireAtLeastOne("batchSize", batchSize);
    requireAtLeastOne("maxInFlight", maxInFlight);
    OrderedStream<List<Document>, IngestStreamRequest, IngestStreamResponse> stream =
        new OrderedStream<>(
            vectorsAsync::ingestStream,
            (index, id, batch) -> {
              IngestStreamRequest.Builder request =
                  IngestStreamRequest.newBuilder()
                      .setBatchId(id)
                      .setOptions(options)
                      .addAllDocuments(batch);
              if (index == 0) {
                request.setCollection(collection);
              }
              return request.build();
            },
            IngestStreamResponse::getBatchId,
            INGEST_STREAM_WORDS);
    long[] acknowledged = {0};
    stream.run(
        batchesOf(documents.iterator(), batchSize),
        maxInFlight,
        (index, id, batch, response) -> {
          List<String> ids = batch.stream().map(Document::getId).toList();
          if (!response.getIdsList().equals(ids)) {
            throw Status.INTERNAL
                .withDescription(
                    "batch "
                        + id
                        + ": acknowledged "
                        + response.getIdsCount()
                        + " ids that differ from the "
                        + ids.size()
                        + " sent")
                .asRuntimeException();
          }
          acknowledged[0] = response.getTotalAcknowledged();
          onAck.accept(new IngestAck(index, response.getIdsList(), acknowledged[0], response));
        });
    return acknowledged[0];
  }

  /**
   * {@code n}, a batch size or a bound on the messages in flight, refused below 1: the client
   * alone uses it.
   */
  private static int requireAtLeastOne(String what, int n) {
    if (n < 1) {
      throw new IllegalArgumentException(what + " must be at least 1, got " + n);
    }
    return n;
  }

  /** Consecutive batches of {@code size} items, each taken from {@code items} only when asked. */
  private static <T> Iterator<List<T>> batchesOf(Iterator<T> items, int size) {
    return new Iterator<>() {
      @Override
      public boolean hasNext() {
        return items.hasNext();
      }

      @Override
      public List<T> next() {
        List<T> batch = new ArrayList<>(size);
        while (batch.size() < size && items.hasNext()) {
          batch.add(items.next());
        }
        return batch;
      }
    };
  }

  /** The {@code limit} documents nearest to {@code text} (embedded with the query prompt). */
  public List<Hit> search(String collection, String text, int limit) {
    return search(collection, text, null, Vectors.limit(limit));
  }

  /**
   * Documents nearest to {@code text} (embedded with the query prompt), best first.
   *
   * @param filter restricts the results (see {@link Vectors#must}); null for none
   * @param params limit, offset, score threshold, payload/vectors, exact, hnsw_ef; null for the
   *     server's defaults
   */
  public List<Hit> search(String collection, String text, Filter filter, QueryParams params) {
    return search(searchRequest(collection, filter, params).setText(text).build());
  }

  /**
   * Documents ranked for {@code text} by {@code mode}: {@code SEARCH_MODE_KEYWORD} by BM25, {@code
   * SEARCH_MODE_HYBRID} by both rankings fused (collections created with {@code bm25}).
   */
  public List<Hit> search(
      String collection, String text, SearchMode mode, Filter filter, QueryParams params) {
    return search(searchRequest(collection, filter, params).setText(text).setMode(mode).build());
  }

  /** Documents nearest to {@code vector}, best first (filter and params may be null). */
  public List<Hit> search(String collection, float[] vector, Filter filter, QueryParams params) {
    return search(searchRequest(collection, filter, params).setVector(Vectors.vector(vector)).build());
  }

  /**
   * As {@link #search(String, String, Filter, QueryParams)}, the best hits weighed by the age of a
   * date and time field ({@link Vectors#recency}; null for none), fresher documents first among
   * equally good matches; the hits carry the weighed scores.
   */
  public List<Hit> search(
      String collection, String text, Filter filter, QueryParams params, Recency recency) {
    return search(collection, text, filter, params, recency, null);
  }

  /** As {@link #search(String, float[], Filter, QueryParams)}, weighed by {@code recency}. */
  public List<Hit> search(
      String collection, float[] vector, Filter filter, QueryParams params, Recency recency) {
    return search(collection, vector, filter, params, recency, null);
  }

  /**
   * As {@link #search(String, String, Filter, QueryParams)}, the best hits weighed by the age of a
   * date and time field ({@link Vectors#recency}) and by the distance to a place ({@link
   * Vectors#proximity}), each null for none; with both, freshness and closeness multiply. The hits
   * carry the weighed scores.
   */
  public List<Hit> search(
      String collection,
      String text,
      Filter filter,
      QueryParams params,
      Recency recency,
      Proximity proximity) {
    return search(
        withWeighings(searchRequest(collection, filter, params).setText(text), recency, proximity));
  }

  /**
   * As {@link #search(String, float[], Filter, QueryParams)}, weighed by {@code recency} and
   * {@code proximity} (each null for none).
   */
  public List<Hit> search(
      String collection,
      float[] vector,
      Filter filter,
      QueryParams params,
      Recency recency,
      Proximity proximity) {
    return search(
        withWeighings(
            searchRequest(collection, filter, params).setVector(Vectors.vector(vector)),
            recency,
            proximity));
  }

  /**
   * As {@link #search(String, String, Filter, QueryParams)}, the best hits reordered by the
   * server's reranker ({@link Vectors#rerank}; null for none), which reads the query text together
   * with each hit's stored text; the hits carry the reranker's scores.
   *
   * @throws StatusRuntimeException {@code FAILED_PRECONDITION} for a hit without text at the
   *     rerank's text key, or from a server that runs no reranker; {@code INVALID_ARGUMENT} with
   *     diversity
   */
  public List<Hit> search(
      String collection, String text, Filter filter, QueryParams params, SearchRerank rerank) {
    return search(withRerank(searchRequest(collection, filter, params).setText(text), rerank));
  }

  /**
   * As {@link #search(String, String, SearchMode, Filter, QueryParams)}, the best hits of the
   * dense, keyword or hybrid ranking reordered by {@code rerank} (null for none), as {@link
   * #search(String, String, Filter, QueryParams, SearchRerank)} reorders them.
   */
  public List<Hit> search(
      String collection,
      String text,
      SearchMode mode,
      Filter filter,
      QueryParams params,
      SearchRerank rerank) {
    return search(
        withRerank(searchRequest(collection, filter, params).setText(text).setMode(mode), rerank));
  }

  private static SearchRequest withRerank(SearchRequest.Builder request, SearchRerank rerank) {
    if (rerank != null) {
      request.setRerank(rerank);
    }
    return request.build();
  }

  private static SearchRequest withWeighings(
      SearchRequest.Builder request, Recency recency, Proximity proximity) {
    if (recency != null) {
      request.setRecency(recency);
    }
    if (proximity != null) {
      request.setProximity(proximity);
    }
    return request.build();
  }

  /**
   * Several searches of one collection in one call (their texts are embedded together): the hits
   * of each, in order. The first search that fails fails the call, its index named.
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} for a search with {@code group_by}
   *     (its answer is groups, which this method has no place for: send grouped searches with
   *     {@code vectorStub().searchBatch(request)} and read each response's {@code getGroupsList()})
   *     or a negative count, the search's index named
   */
  public List<List<Hit>> searchBatch(SearchBatchRequest request) {
    for (int i = 0; i < request.getSearchesCount(); i++) {
      SearchRequest search = request.getSearches(i);
      String which = "search " + i + ": ";
      if (search.hasGroupBy()) {
        throw Status.INVALID_ARGUMENT
            .withDescription(
                which
                    + "searchBatch answers hits, and a search with group_by answers groups: send"
                    + " grouped searches with vectorStub().searchBatch")
            .asRuntimeException();
      }
      requireCounts(which, search);
    }
    return vectors.searchBatch(request).getResponsesList().stream()
        .map(response -> hits(response.getResultsList()))
        .toList();
  }

  /**
   * Any search request without {@code group_by} (embedding options for the query included).
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} for a request with {@code group_by},
   *     which answers in groups ({@link #searchGroups(SearchRequest)} returns them), or a negative
   *     count
   */
  public List<Hit> search(SearchRequest request) {
    refuseGroupBy(request.hasGroupBy(), "search", "searchGroups");
    requireCounts("", request);
    return hits(vectors.search(request).getResultsList());
  }

  /**
   * The best hits for {@code text} (embedded with the query prompt) grouped by the payload field
   * {@code groupBy} (a string or an integer, or a list of them; a dotted path reaches into
   * objects): at most {@code groupSize} hits (1 to 100) per value, groups ranked by their best
   * hit. Hits without such a value are left out.
   *
   * @param filter restricts the hits; null for none
   * @param params {@code limit} counts groups; no offset or diversity ({@code INVALID_ARGUMENT});
   *     null for the server's defaults
   */
  public List<HitGroup> searchGroups(
      String collection,
      String text,
      String groupBy,
      int groupSize,
      Filter filter,
      QueryParams params) {
    return searchGroups(
        searchRequest(collection, filter, params)
            .setText(text)
            .setGroupBy(groupBy(groupBy, groupSize))
            .build());
  }

  /**
   * As {@link #searchGroups(String, String, String, int, Filter, QueryParams)}, ranked by {@code
   * mode}: keyword and hybrid modes need a collection created with {@code bm25}.
   */
  public List<HitGroup> searchGroups(
      String collection,
      String text,
      SearchMode mode,
      String groupBy,
      int groupSize,
      Filter filter,
      QueryParams params) {
    return searchGroups(
        searchRequest(collection, filter, params)
            .setText(text)
            .setMode(mode)
            .setGroupBy(groupBy(groupBy, groupSize))
            .build());
  }

  /**
   * As {@link #searchGroups(String, String, String, int, Filter, QueryParams)}, by {@code vector}.
   */
  public List<HitGroup> searchGroups(
      String collection,
      float[] vector,
      String groupBy,
      int groupSize,
      Filter filter,
      QueryParams params) {
    return searchGroups(
        searchRequest(collection, filter, params)
            .setVector(Vectors.vector(vector))
            .setGroupBy(groupBy(groupBy, groupSize))
            .build());
  }

  /**
   * Any grouped search request: its groups, best first.
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} when {@code request} has no {@code
   *     group_by} or has a negative count, or (from the server) with an offset, diversity,
   *     recency, proximity or rerank
   */
  public List<HitGroup> searchGroups(SearchRequest request) {
    requireGroupBy(request.hasGroupBy(), "searchGroups");
    requireCounts("", request);
    return groups(vectors.search(request).getGroupsList());
  }

  /** A grouped call's request without group_by would answer with no groups at all. */
  private static void requireGroupBy(boolean hasGroupBy, String method) {
    if (!hasGroupBy) {
      throw Status.INVALID_ARGUMENT
          .withDescription(method + " needs a request with group_by")
          .asRuntimeException();
    }
  }

  /**
   * A request with group_by answers groups, which {@code method} has no place for: they would
   * be dropped. {@code grouped} is the method that returns them.
   */
  private static void refuseGroupBy(boolean hasGroupBy, String method, String grouped) {
    if (hasGroupBy) {
      throw Status.INVALID_ARGUMENT
          .withDescription(
              method + " answers hits, and a request with group_by answers groups: use " + grouped)
          .asRuntimeException();
    }
  }

  /** The counts of a search request, each refused when negative ({@code which} prefixes). */
  private static void requireCounts(String which, SearchRequest request) {
    requireCounts(which, request.getParams(), request.getGroupBy());
    Vectors.requireCount(which + "recency candidates", request.getRecency().getCandidates());
    Vectors.requireCount(which + "proximity candidates", request.getProximity().getCandidates());
    Vectors.requireCount(which + "rerank candidates", request.getRerank().getCandidates());
  }

  /** The counts of a recommendation request, each refused when negative. */
  private static void requireCounts(RecommendRequest request) {
    requireCounts("", request.getParams(), request.getGroupBy());
    Vectors.requireCount("recency candidates", request.getRecency().getCandidates());
    Vectors.requireCount("proximity candidates", request.getProximity().getCandidates());
  }

  private static void requireCounts(String which, QueryParams params, GroupBy groupBy) {
    Vectors.requireCount(which + "limit", params.getLimit());
    Vectors.requireCount(which + "offset", params.getOffset());
    Vectors.requireCount(which + "hnsw_ef", params.getHnswEf());
    Vectors.requireCount(which + "diversity_candidates", params.getDiversityCandidates());
    Vectors.requireCount(which + "group_by size", groupBy.getSize());
  }

  /** The groups of a grouped search or recommendation, keys as String or Long. */
  private static List<HitGroup> groups(List<dev.embedserve.v1.HitGroup> found) {
    List<HitGroup> groups = new ArrayList<>(found.size());
    for (dev.embedserve.v1.HitGroup group : found) {
      Object key =
          switch (group.getKeyCase()) {
            case TEXT -> group.getText();
            case INTEGER -> group.getInteger();
            case KEY_NOT_SET -> null;
          };
      groups.add(new HitGroup(key, hits(group.getHitsList())));
    }
    return Collections.unmodifiableList(groups);
  }

  private static GroupBy groupBy(String key, int size) {
    return GroupBy.newBuilder().setKey(key).setSize(Vectors.requireCount("groupSize", size)).build();
  }

  private static SearchRequest.Builder searchRequest(
      String collection, Filter filter, QueryParams params) {
    SearchRequest.Builder request = SearchRequest.newBuilder().setCollection(collection);
    if (filter != null) {
      request.setFilter(filter);
    }
    if (params != null) {
      request.setParams(params);
    }
    return request;
  }

  /**
   * The {@code limit} documents most like the stored {@code positiveIds} and unlike {@code
   * negativeIds}; the examples never come back.
   */
  public List<Hit> recommend(
      String collection, List<String> positiveIds, List<String> negativeIds, int limit) {
    return recommend(
        collection,
        Vectors.ids(positiveIds),
        Vectors.ids(negativeIds),
        RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED,
        null,
        Vectors.limit(limit));
  }

  /**
   * Documents like the positive examples and unlike the negative ones ({@link Vectors#id}, {@link
   * Vectors#textExample}, {@link Vectors#vectorExample}), best first; stored examples never come
   * back. Filter and params may be null.
   */
  public List<Hit> recommend(
      String collection,
      List<Example> positive,
      List<Example> negative,
      RecommendStrategy strategy,
      Filter filter,
      QueryParams params) {
    return recommend(
        recommendRequest(collection, positive, negative, strategy, filter, params).build());
  }

  /**
   * Any recommendation request without {@code group_by} (embedding options for text examples
   * included).
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} for a request with {@code group_by},
   *     which answers in groups ({@link #recommendGroups(RecommendRequest)} returns them), or a
   *     negative count
   */
  public List<Hit> recommend(RecommendRequest request) {
    refuseGroupBy(request.hasGroupBy(), "recommend", "recommendGroups");
    requireCounts(request);
    return hits(vectors.recommend(request).getResultsList());
  }

  /**
   * The documents most like the stored {@code positiveIds} and unlike {@code negativeIds}, grouped
   * by the payload field {@code groupBy}: at most {@code groupSize} hits (1 to 100) per value, the
   * best {@code limit} groups; the examples never come back. See {@link #recommendGroups(String,
   * List, List, RecommendStrategy, String, int, Filter, QueryParams)}.
   */
  public List<HitGroup> recommendGroups(
      String collection,
      List<String> positiveIds,
      List<String> negativeIds,
      String groupBy,
      int groupSize,
      int limit) {
    return recommendGroups(
        collection,
        Vectors.ids(positiveIds),
        Vectors.ids(negativeIds),
        RecommendStrategy.RECOMMEND_STRATEGY_UNSPECIFIED,
        groupBy,
        groupSize,
        null,
        Vectors.limit(limit));
  }

  /**
   * Documents like the positive examples and unlike the negative ones (as {@link #recommend(String,
   * List, List, RecommendStrategy, Filter, QueryParams)}) grouped by the payload field {@code
   * groupBy} (a string or an integer, or a list of them; a dotted path reaches into objects), as
   * {@link #searchGroups(String, String, String, int, Filter, QueryParams)} groups a search: at
   * most {@code groupSize} hits (1 to 100) per value, groups ranked by their best hit. Hits without
   * such a value are left out; stored examples never come back.
   *
   * @param filter restricts the hits; null for none
   * @param params {@code limit} counts groups; no offset or diversity ({@code INVALID_ARGUMENT});
   *     null for the server's defaults
   */
  public List<HitGroup> recommendGroups(
      String collection,
      List<Example> positive,
      List<Example> negative,
      RecommendStrategy strategy,
      String groupBy,
      int groupSize,
      Filter filter,
      QueryParams params) {
    return recommendGroups(
        recommendRequest(collection, positive, negative, strategy, filter, params)
            .setGroupBy(groupBy(groupBy, groupSize))
            .build());
  }

  /**
   * Any grouped recommendation request: its groups, best first.
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} when {@code request} has no {@code
   *     group_by} or has a negative count, or (from the server) with an offset, diversity, recency
   *     or proximity
   */
  public List<HitGroup> recommendGroups(RecommendRequest request) {
    requireGroupBy(request.hasGroupBy(), "recommendGroups");
    requireCounts(request);
    return groups(vectors.recommend(request).getGroupsList());
  }

  private static RecommendRequest.Builder recommendRequest(
      String collection,
      List<Example> positive,
      List<Example> negative,
      RecommendStrategy strategy,
      Filter filter,
      QueryParams params) {
    RecommendRequest.Builder request =
        RecommendRequest.newBuilder()
            .setCollection(collection)
            .addAllPositive(positive)
            .addAllNegative(negative)
            .setStrategy(strategy);
    if (filter != null) {
      request.setFilter(filter);
    }
    if (params != null) {
      request.setParams(params);
    }
    return request;
  }

  /**
   * The stored documents among {@code ids}, in the order asked; missing ids are skipped. Payload
   * numbers come back as {@code Double}; {@link #get(GetRequest)} with {@code exact_payloads} reads
   * them exactly.
   */
  public List<Stored> get(String collection, List<String> ids, boolean withVectors) {
    return get(
        GetRequest.newBuilder()
            .setCollection(collection)
            .addAllIds(ids)
            .setWithVectors(withVectors)
            .build());
  }

  /**
   * The stored documents of any get request, in the order asked; missing ids are skipped. With
   * {@code exact_payloads} ({@code setExactPayloads(true)}) the payloads are read from the JSON
   * text the server sends instead of a {@code Struct}, numbers exact: an integer a {@code long}
   * holds as a {@code Long} (9007199254740993 too, which a Struct's doubles would change to
   * 9007199254740992), any other number as a {@code Double}.
   *
   * @throws StatusRuntimeException {@code INTERNAL} for a payload_json that is no JSON object
   */
  public List<Stored> get(GetRequest request) {
    return stored(vectors.get(request).getDocumentsList());
  }

  /** Deletes the documents with the given ids. */
  public void delete(String collection, List<String> ids) {
    delete(collection, ids, null);
  }

  /**
   * Deletes the documents with the given ids, those matching {@code filter}, or the ids that also
   * match it (ids may be empty, filter null; not both).
   */
  public void delete(String collection, List<String> ids, Filter filter) {
    DeleteRequest.Builder request = DeleteRequest.newBuilder().setCollection(collection).addAllIds(ids);
    if (filter != null) {
      request.setFilter(filter);
    }
    vectors.delete(request.build());
  }

  /**
   * Sets the top-level keys of {@code payload} (a key set to null is removed) and removes {@code
   * deleteKeys}, vectors kept, on the documents with the given ids (every one must exist), those
   * matching {@code filter}, or the ids that also match it (ids may be empty, filter null; not
   * both).
   */
  public void updatePayload(
      String collection,
      List<String> ids,
      Filter filter,
      Map<String, ?> payload,
      List<String> deleteKeys) {
    UpdatePayloadRequest.Builder request =
        UpdatePayloadRequest.newBuilder()
            .setCollection(collection)
            .addAllIds(ids)
            .setPayload(Vectors.struct(payload))
            .addAllDeleteKeys(deleteKeys);
    if (filter != null) {
      request.setFilter(filter);
    }
    vectors.updatePayload(request.build());
  }

  /**
   * How many documents (matching {@code filter}, or all when null) hold each value of the payload
   * field {@code key}, most frequent first, at most {@code limit} values. The field needs a
   * keyword, integer or bool payload index.
   */
  public List<FacetValue> facet(String collection, String key, Filter filter, int limit) {
    return facet(facetRequest(collection, key, filter).setLimit(Vectors.requireCount("limit", limit)));
  }

  /** {@link #facet(String, String, Filter, int)} at the server's default of 10 values. */
  public List<FacetValue> facet(String collection, String key, Filter filter) {
    return facet(facetRequest(collection, key, filter));
  }

  private static FacetRequest.Builder facetRequest(String collection, String key, Filter filter) {
    FacetRequest.Builder request = FacetRequest.newBuilder().setCollection(collection).setKey(key);
    if (filter != null) {
      request.setFilter(filter);
    }
    return request;
  }

  private List<FacetValue> facet(FacetRequest.Builder request) {
    return vectors.facet(request.build()).getValuesList();
  }

  /** The number of documents in a collection. */
  public long count(String collection) {
    return count(collection, null);
  }

  /** The number of documents matching {@code filter} (null: all). */
  public long count(String collection, Filter filter) {
    CountRequest.Builder request = CountRequest.newBuilder().setCollection(collection);
    if (filter != null) {
      request.setFilter(filter);
    }
    return vectors.count(request.build()).getCount();
  }

  // ---- Export and analysis -------------------------------------------------------------------

  /**
   * One page of {@code limit} stored documents with their payloads, in a stable order; {@code
   * cursor} is null for the first page, then the previous page's {@link ScrollPage#nextCursor}.
   */
  public ScrollPage scroll(String collection, String cursor, int limit) {
    return scroll(collection, cursor, limit, null, false);
  }

  /**
   * One page of {@code limit} stored documents with their payloads, in the order of the payload
   * field {@code orderBy} (smallest first, or largest first when {@code descending}); null {@code
   * orderBy} means the stable id order of {@link #scroll(String, String, int)}. The field needs an
   * integer, float or datetime payload index; documents without a value there are left out, and
   * documents sharing a value come in a fixed order. {@code cursor} is null for the first page, then the
   * previous page's {@link ScrollPage#nextCursor}, which only goes with the same order.
   *
   * @throws IllegalArgumentException when {@code descending} is set without {@code orderBy}
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} when the field has no integer or float
   *     index, or the cursor was handed out with another order
   */
  public ScrollPage scroll(
      String collection, String cursor, int limit, String orderBy, boolean descending) {
    if (orderBy == null && descending) {
      throw new IllegalArgumentException("descending needs an orderBy field");
    }
    ScrollRequest.Builder request =
        ScrollRequest.newBuilder()
            .setCollection(collection)
            .setCursor(cursor == null ? "" : cursor)
            .setLimit(limit);
    if (orderBy != null) {
      request.setOrderBy(ScrollOrder.newBuilder().setKey(orderBy).setDescending(descending));
    }
    return scroll(request.build());
  }

  /**
   * One page of any scroll request (filter, page size, payloads and vectors or not, order, exact
   * payloads). With {@code exact_payloads} the payloads are read as {@link #get(GetRequest)} reads
   * them: an integer a {@code long} holds as a {@code Long}, past 2**53 too.
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} for a negative {@code limit}
   */
  public ScrollPage scroll(ScrollRequest request) {
    Vectors.requireCount("limit", request.getLimit());
    ScrollResponse response = vectors.scroll(request);
    String next = response.getNextCursor();
    return new ScrollPage(stored(response.getDocumentsList()), next.isEmpty() ? null : next);
  }

  /** Every document of a collection with its payload, fetched 256 a page. */
  public Stream<Stored> scrollAll(String collection) {
    return scrollAll(ScrollRequest.newBuilder().setCollection(collection).build());
  }

  /**
   * Every document {@code request} matches, from its cursor on (empty: the start), read lazily:
   * the next page is asked for when the stream has consumed the current one, each request under
   * the default deadline. Filter, page size ({@code limit}), payloads, vectors, order ({@code
   * order_by}) and exact payloads ({@code exact_payloads}) come from {@code request}. Use {@code .iterator()} for an {@link Iterator}.
   *
   * @throws StatusRuntimeException from the stream's terminal operation (or the iterator's
   *     {@code hasNext}) when a page request fails, e.g. {@code NOT_FOUND} for a missing collection
   */
  public Stream<Stored> scrollAll(ScrollRequest request) {
    return ScrollCursor.stream(this::scroll, request);
  }

  /** Groups a collection's documents by k-means, k chosen by silhouette over 2..12. */
  public ClusterResponse cluster(String collection) {
    return cluster(ClusterRequest.newBuilder().setCollection(collection).build());
  }

  /** Groups texts (embedded as documents; ids are their indexes), k chosen by silhouette. */
  public ClusterResponse clusterTexts(List<String> texts) {
    return cluster(ClusterRequest.newBuilder().setTexts(Vectors.textList(texts)).build());
  }

  /**
   * Groups a collection's documents or a list of texts ({@link Vectors#textList}): k-means with
   * {@code k}, or k chosen by silhouette over {@code k_min..k_max}; or HDBSCAN with {@code
   * min_cluster_size}; {@code write_label} writes each document's label into its payload. {@link
   * Vectors#labelsById} reads the labels back as a map.
   *
   * <p>A balanced client never retries Cluster on another server, unlike Scroll and
   * FindDuplicates: with {@code write_label} it writes, and the retry policy is per method.
   */
  public ClusterResponse cluster(ClusterRequest request) {
    return vectors.cluster(request);
  }

  /** Near-duplicate pairs and groups of a collection at or above a cosine {@code threshold}. */
  public FindDuplicatesResponse findDuplicates(String collection, float threshold) {
    return findDuplicates(
        FindDuplicatesRequest.newBuilder().setCollection(collection).setThreshold(threshold).build());
  }

  /**
   * Near-duplicate pairs (best first) and groups, each document's best-neighbour score as a
   * histogram, and the stored texts of the paired ids.
   *
   * @throws StatusRuntimeException {@code INVALID_ARGUMENT} for a threshold outside [-1, 1]
   */
  public FindDuplicatesResponse findDuplicates(FindDuplicatesRequest request) {
    return vectors.findDuplicates(request);
  }

  private static List<Stored> stored(List<StoredDocument> documents) {
    List<Stored> stored = new ArrayList<>(documents.size());
    for (StoredDocument document : documents) {
      stored.add(
          new Stored(
              document.getId(),
              storedPayload(document),
              document.hasVector() ? floats(document.getVector()) : null));
    }
    return Collections.unmodifiableList(stored);
  }

  /**
   * A stored document's payload: from its payload_json where the request asked for exact payloads
   * (the server fills that instead of the Struct; numbers exact), else from its Struct.
   */
  private static Map<String, Object> storedPayload(StoredDocument document) {
    String json = document.getPayloadJson();
    if (json.isEmpty()) {
      return Vectors.toMap(document.getPayload());
    }
    try {
      return PayloadJson.parseObject(json);
    } catch (IllegalArgumentException e) {
      throw Status.INTERNAL
          .withDescription(
              "document '" + document.getId() + "': payload_json: " + e.getMessage())
          .asRuntimeException();
    }
  }

  private static List<Hit> hits(List<ScoredDocument> results) {
    List<Hit> hits = new ArrayList<>(results.size());
    for (ScoredDocument result : results) {
      hits.add(
          new Hit(
              result.getId(),
              result.getScore(),
              Vectors.toMap(result.getPayload()),
              result.hasVector() ? floats(result.getVector()) : null));
    }
    return Collections.unmodifiableList(hits);
  }

  private static float[] floats(Vector vector) {
    float[] values = new float[vector.getValuesCount()];
    for (int i = 0; i < values.length; i++) {
      values[i] = vector.getValues(i);
    }
    return values;
  }

  private static List<float[]> vectorsOf(List<Embedding> embeddings) {
    List<float[]> vectors = new ArrayList<>(embeddings.size());
    for (Embedding embedding : embeddings) {
      float[] values = new float[embedding.getValuesCount()];
      for (int i = 0; i < values.length; i++) {
        values[i] = embedding.getValues(i);
      }
      vectors.add(values);
    }
    return Collections.unmodifiableList(vectors);
  }

  /**
   * The Embedding.quantized rows of one answer of {@code dimensions}, each checked to be as long
   * as {@code packed} (one bit per dimension) or not (one byte per dimension) makes it.
   */
  private static List<byte[]> quantizedOf(
      List<Embedding> embeddings, int dimensions, boolean packed) {
    int width = packed ? (dimensions + 7) / 8 : dimensions;
    List<byte[]> rows = new ArrayList<>(embeddings.size());
    for (Embedding embedding : embeddings) {
      if (embedding.getQuantized().isEmpty() && embedding.getValuesCount() > 0) {
        throw Status.UNIMPLEMENTED
            .withDescription(
                "the server answered float vectors: it predates quantized Embed output")
            .asRuntimeException();
      }
      if (embedding.getQuantized().size() != width) {
        throw Status.INTERNAL
            .withDescription(
                "a quantized vector of "
                    + embedding.getQuantized().size()
                    + " bytes; "
                    + width
                    + " expected for "
                    + dimensions
                    + " dimensions")
            .asRuntimeException();
      }
      rows.add(embedding.getQuantized().toByteArray());
    }
    return rows;
  }

  private static <T> List<List<T>> partition(List<T> items, int size) {
    List<List<T>> chunks = new ArrayList<>();
    for (int start = 0; start < items.size(); start += size) {
      chunks.add(items.subList(start, Math.min(start + size, items.size())));
    }
    return chunks;
  }

  /** Shuts the channel down (shared with {@link #withTimeout} views), waiting up to 5 s. */
  @Override
  public void close() {
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }

  /**
   * The answer to one batch sent by {@link #embedStream} or {@link #embedQuantizedStream}: its
   * position in the input ({@code index}), the {@code requestId} sent with it, one row per text
   * of the batch, in order, and the server's full message ({@code response}: usage, timings).
   * The rows are {@code vectors} (float32, from embedStream; empty from embedQuantizedStream) or
   * {@code quantized} (from embedQuantizedStream; empty from embedStream).
   */
  public record StreamResult(
      long index,
      String requestId,
      List<float[]> vectors,
      byte[][] quantized,
      EmbedStreamResponse response) {
    /** A result of float32 {@code vectors} (no quantized rows). */
    public StreamResult(
        long index, String requestId, List<float[]> vectors, EmbedStreamResponse response) {
      this(index, requestId, vectors, NO_QUANTIZED, response);
    }
  }

  /**
   * One document of {@link #rerank}: its position in the request, its score, and its text ({@code
   * document}, null unless asked for).
   */
  public record Ranked(int index, float score, String document) {}

  /** The acknowledgement of one message sent by {@link #ingest}: its documents are durable. */
  public record IngestAck(
      long index, List<String> ids, long totalAcknowledged, IngestStreamResponse response) {}

  /**
   * One search or recommendation result. {@code payload} is empty when none was asked for
   * (numbers come back as Double); {@code vector} is null unless vectors were asked for.
   */
  public record Hit(String id, float score, Map<String, Object> payload, float[] vector) {}

  /**
   * One group of {@link #searchGroups} or {@link #recommendGroups}: the value of the grouping
   * field ({@code key}, a String or a Long) and its best hits, best first.
   */
  public record HitGroup(Object key, List<Hit> hits) {}

  /**
   * A stored document returned by {@link #get} and {@link #scroll} ({@code payload} empty when
   * none was asked for, {@code vector} null unless asked for). Payload numbers are {@code Double},
   * or, read with {@code exact_payloads}, exact: an integer a {@code long} holds a {@code Long}
   * (past 2**53 too), any other number a {@code Double}.
   */
  public record Stored(String id, Map<String, Object> payload, float[] vector) {}

  /** One page of {@link #scroll}; {@code nextCursor} is null after the last page. */
  public record ScrollPage(List<Stored> documents, String nextCursor) {
    /** Whether no page follows this one. */
    public boolean isLast() {
      return nextCursor == null;
    }
  }

  /** Gives unary calls without a deadline the client's default one. */
  private static final class DefaultDeadline implements ClientInterceptor {
    private final Duration timeout;

    DefaultDeadline(Duration timeout) {
      this.timeout = timeout;
    }

    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      if (options.getDeadline() == null
          && timeout != null
          && !timeout.isZero()
          && method.getType() == MethodDescriptor.MethodType.UNARY) {
        options = options.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS);
      }
      return next.newCall(method, options);
    }
  }

  /** Configures an {@link EmbedserveClient}. */
  public static final class Builder {
    private final String target;
    private ChannelCredentials credentials = InsecureChannelCredentials.create();
    private String apiKey;
    private Duration timeout = DEFAULT_TIMEOUT;
    private String authority;

    private Builder(String target) {
      this.target = Objects.requireNonNull(target, "target");
    }

    /** TLS trusting the JDK's default CAs. */
    public Builder tls() {
      this.credentials = TlsChannelCredentials.create();
      return this;
    }

    /** TLS trusting the PEM certificates in {@code caFile}. */
    public Builder tlsCaFile(Path caFile) {
      try {
        this.credentials = TlsChannelCredentials.newBuilder().trustManager(caFile.toFile()).build();
      } catch (IOException e) {
        throw new UncheckedIOException("reading CA file " + caFile, e);
      }
      return this;
    }

    /** Any channel credentials (mutual TLS, ALTS, ...). */
    public Builder credentials(ChannelCredentials credentials) {
      this.credentials = Objects.requireNonNull(credentials, "credentials");
      return this;
    }

    /** The name checked against the server certificate, when it differs from the target's. */
    public Builder overrideAuthority(String authority) {
      this.authority = authority;
      return this;
    }

    /**
     * Sends {@code authorization: Bearer <key>} on every call. Use TLS outside a trusted
     * network.
     *
     * @throws IllegalArgumentException for a key that is not printable ASCII (a line break
     *     read from a file, say), which grpc-java would drop from every call unsent
     */
    public Builder apiKey(String apiKey) {
      if (apiKey != null) {
        for (int position = 0; position < apiKey.length(); position++) {
          char c = apiKey.charAt(position);
          if (c < ' ' || c > '~') {
            String kind = c > 0x7f ? "non-ASCII character" : "control character (a line break?)";
            // The key itself is not repeated: it is a secret.
            throw new IllegalArgumentException(
                "the API key has a " + kind + " at position " + position
                    + "; a key is printable ASCII");
          }
        }
      }
      this.apiKey = apiKey == null || apiKey.isEmpty() ? null : apiKey;
      return this;
    }

    /** Default deadline of unary calls ({@link #DEFAULT_TIMEOUT}; zero or null: none). */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    public EmbedserveClient build() {
      ManagedChannelBuilder<?> builder =
          Grpc.newChannelBuilder(Balancing.channelTarget(target), credentials)
              .maxInboundMessageSize(MAX_MESSAGE_BYTES);
      if (Balancing.isBalanced(target)) { // round_robin and retries: see Balancing
        builder.defaultServiceConfig(Balancing.serviceConfig()).enableRetry();
      }
      if (authority != null) {
        builder.overrideAuthority(authority);
      }
      return new EmbedserveClient(builder.build(), apiKey, timeout);
    }
  }
}
