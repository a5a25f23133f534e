package dev.embedserve.client;

import dev.embedserve.v1.EmbedOptions;
import dev.embedserve.v1.EmbedRequest;
import dev.embedserve.v1.EmbedResponse;
import dev.embedserve.v1.EmbedStreamRequest;
import dev.embedserve.v1.EmbedStreamResponse;
import dev.embedserve.v1.Embedding;
import dev.embedserve.v1.EmbeddingServiceGrpc;
import dev.embedserve.v1.GetModelInfoRequest;
import dev.embedserve.v1.GetModelInfoResponse;
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
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReferenceArray;
import java.util.function.Consumer;

/**
 * Thin client for the embedserve gRPC server.
 *
 * <pre>{@code
 * try (EmbedserveClient client = EmbedserveClient.builder("127.0.0.1:50051").build()) {
 *   List<float[]> vectors = client.embed(List.of("first text", "second text"));
 * }
 * }</pre>
 *
 * <p>Failed calls throw {@link StatusRuntimeException} carrying the server's status
 * ({@code INVALID_ARGUMENT}, {@code DEADLINE_EXCEEDED}, ...). Unary calls get the client's
 * default deadline ({@link Builder#timeout}); streams are not bounded by it. The client is
 * thread-safe; {@link #withTimeout} views share its channel. {@link #stub()} exposes the
 * generated stub (with the API key and default deadline) for the calls not wrapped here.
 */
public final class EmbedserveClient implements AutoCloseable {
  /** Default deadline of unary calls. */
  public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(300);
  /** Texts per request when {@link #embed} splits a large input. */
  public static final int DEFAULT_BATCH_SIZE = 256;
  /** Requests outstanding at once in {@link #embed} and {@link #embedStream}. */
  public static final int DEFAULT_MAX_IN_FLIGHT = 4;

  private static final int MAX_MESSAGE_BYTES = 256 << 20;
  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);
  private static final Object COMPLETED = new Object();

  private final ManagedChannel channel;
  private final Channel calls;
  private final Duration timeout;
  private final String apiKey;
  private final EmbeddingServiceGrpc.EmbeddingServiceBlockingStub blocking;
  private final EmbeddingServiceGrpc.EmbeddingServiceStub async;
  private final HealthGrpc.HealthBlockingStub health;

  private EmbedserveClient(ManagedChannel channel, String apiKey, Duration timeout) {
    this.channel = channel;
    this.apiKey = apiKey;
    this.timeout = timeout;
    List<ClientInterceptor> interceptors = new ArrayList<>();
    interceptors.add(new DefaultDeadline(timeout));
    if (apiKey != null) {
      Metadata headers = new Metadata();
      headers.put(AUTHORIZATION, "Bearer " + apiKey);
      interceptors.add(MetadataUtils.newAttachHeadersInterceptor(headers));
    }
    this.calls = ClientInterceptors.intercept(channel, interceptors);
    this.blocking = EmbeddingServiceGrpc.newBlockingStub(calls);
    this.async = EmbeddingServiceGrpc.newStub(calls);
    this.health = HealthGrpc.newBlockingStub(calls);
  }

  /** Starts configuring a client for {@code target} ("host:port" or any gRPC target URI). */
  public static Builder builder(String target) {
    return new Builder(target);
  }

  /** A view of this client whose unary calls get {@code timeout} as default deadline. */
  public EmbedserveClient withTimeout(Duration timeout) {
    return new EmbedserveClient(channel, apiKey, timeout);
  }

  /** The generated stub on this client's channel (API key and default deadline applied). */
  public EmbeddingServiceGrpc.EmbeddingServiceBlockingStub stub() {
    return blocking;
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
    CompletableFuture<List<float[]>> result = embedAsync(texts, options);
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

  /** As {@link #embedAsync(List, EmbedOptions)}, with explicit batch size and concurrency. */
  public CompletableFuture<List<float[]>> embedAsync(
      List<String> texts, EmbedOptions options, int batchSize, int maxInFlight) {
    Objects.requireNonNull(options, "options");
    CompletableFuture<List<float[]>> result = new CompletableFuture<>();
    if (texts.isEmpty()) {
      result.completeExceptionally(
          Status.INVALID_ARGUMENT.withDescription("texts must not be empty").asRuntimeException());
      return result;
    }
    List<List<String>> chunks = partition(texts, Math.max(1, batchSize));
    EmbeddingServiceGrpc.EmbeddingServiceStub stub =
        timeout == null || timeout.isZero()
            ? async
            : async.withDeadline(Deadline.after(timeout.toNanos(), TimeUnit.NANOSECONDS));
    AtomicReferenceArray<List<float[]>> parts = new AtomicReferenceArray<>(chunks.size());
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
                EmbedRequest.newBuilder().addAllInputs(chunks.get(index)).setOptions(options).build();
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
                    parts.set(index, vectorsOf(response.getEmbeddingsList()));
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
                    if (remaining.decrementAndGet() == 0) {
                      List<float[]> all = new ArrayList<>(texts.size());
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
    for (int i = 0; i < Math.min(Math.max(1, maxInFlight), chunks.size()); i++) {
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
   * @return the number of batches sent
   * @throws StatusRuntimeException with the server's status when the stream fails; an exception
   *     thrown by {@code handler} cancels the stream and propagates unchanged
   */
  public long embedStream(
      Iterable<? extends List<String>> batches,
      EmbedOptions options,
      int maxInFlight,
      Consumer<StreamResult> handler) {
    Objects.requireNonNull(options, "options");
    BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    @SuppressWarnings("unchecked")
    ClientCallStreamObserver<EmbedStreamRequest>[] requests = new ClientCallStreamObserver[1];
    async.embedStream(
        new ClientResponseObserver<EmbedStreamRequest, EmbedStreamResponse>() {
          @Override
          public void beforeStart(ClientCallStreamObserver<EmbedStreamRequest> call) {
            requests[0] = call;
          }

          @Override
          public void onNext(EmbedStreamResponse response) {
            events.add(response);
          }

          @Override
          public void onError(Throwable t) {
            events.add(t);
          }

          @Override
          public void onCompleted() {
            events.add(COMPLETED);
          }
        });
    StreamObserver<EmbedStreamRequest> sender = requests[0];
    Iterator<? extends List<String>> source = batches.iterator();
    long sent = 0;
    long received = 0;
    boolean closed = false;
    int window = Math.max(1, maxInFlight);
    try {
      while (true) {
        while (!closed && sent - received < window) {
          if (!source.hasNext()) {
            sender.onCompleted();
            closed = true;
            break;
          }
          sender.onNext(
              EmbedStreamRequest.newBuilder()
                  .setRequestId(Long.toString(sent))
                  .addAllInputs(source.next())
                  .setOptions(options)
                  .build());
          sent++;
        }
        if (closed && received == sent) {
          break;
        }
        Object event = events.take();
        if (event instanceof EmbedStreamResponse response) {
          String expected = Long.toString(received);
          if (!response.getRequestId().equals(expected)) {
            throw Status.INTERNAL
                .withDescription(
                    "stream out of order: got request_id '"
                        + response.getRequestId()
                        + "', expected '"
                        + expected
                        + "'")
                .asRuntimeException();
          }
          handler.accept(
              new StreamResult(
                  received, expected, vectorsOf(response.getEmbeddingsList()), response));
          received++;
        } else {
          throw failure(event, "stream ended before the answer to request " + received);
        }
      }
      Object end = events.take();
      if (end != COMPLETED) {
        throw failure(end, "stream sent an answer to no request");
      }
      return sent;
    } catch (InterruptedException e) {
      requests[0].cancel("interrupted", e);
      Thread.currentThread().interrupt();
      throw Status.CANCELLED.withDescription("interrupted").withCause(e).asRuntimeException();
    } catch (RuntimeException | Error e) {
      requests[0].cancel("client stopped the stream", e);
      throw e;
    }
  }

  private static StatusRuntimeException failure(Object event, String otherwise) {
    if (event instanceof Throwable t) {
      Status status = Status.fromThrowable(t);
      return new StatusRuntimeException(status, Status.trailersFromThrowable(t));
    }
    return Status.INTERNAL.withDescription(otherwise).asRuntimeException();
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

  /** The answer to one batch sent by {@link #embedStream}. */
  public record StreamResult(
      long index, String requestId, List<float[]> vectors, EmbedStreamResponse response) {}

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
     */
    public Builder apiKey(String apiKey) {
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
          Grpc.newChannelBuilder(target, credentials)
              .maxInboundMessageSize(MAX_MESSAGE_BYTES);
      if (authority != null) {
        builder.overrideAuthority(authority);
      }
      return new EmbedserveClient(builder.build(), apiKey, timeout);
    }
  }
}
