package dev.embedserve.client;

import com.google.protobuf.Descriptors.FieldDescriptor;
import com.google.protobuf.MessageOrBuilder;
import io.grpc.Attributes;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.List;

/**
 * Strings that are no text: a Java String may hold half of a surrogate pair, which protobuf-java
 * silently writes as {@code '?'} (a text embedded as another, an id stored as another). The client
 * refuses such a string before sending, with {@code INVALID_ARGUMENT} in the Python client's words:
 * "text 0 holds &#92;ud800 at character 4, half of a surrogate pair and not a character".
 */
final class Unicode {
  private Unicode() {}

  /**
   * {@code null} for text; else "holds &#92;ud800 at character 2, half of a surrogate pair and
   * not a character" (characters counted in code points from 1, as Python counts them), to follow
   * the name of where {@code text} came from.
   */
  static String surrogateProblem(String text) {
    int length = text.length();
    for (int i = 0; i < length; i++) {
      char c = text.charAt(i);
      if (!Character.isSurrogate(c)) {
        continue;
      }
      if (Character.isHighSurrogate(c)
          && i + 1 < length
          && Character.isLowSurrogate(text.charAt(i + 1))) {
        i++; // a pair: one character
        continue;
      }
      return "holds "
          + escaped(c)
          + " at character "
          + (text.codePointCount(0, i) + 1)
          + ", half of a surrogate pair and not a character";
    }
    return null;
  }

  /** {@code text} with each lone half of a surrogate pair written as its escape, for errors. */
  static String shown(String text) {
    if (text == null || surrogateProblem(text) == null) {
      return text;
    }
    StringBuilder shown = new StringBuilder(text.length() + 8);
    for (int i = 0; i < text.length(); i++) {
      char c = text.charAt(i);
      if (Character.isHighSurrogate(c)
          && i + 1 < text.length()
          && Character.isLowSurrogate(text.charAt(i + 1))) {
        shown.append(c).append(text.charAt(++i));
      } else {
        shown.append(Character.isSurrogate(c) ? escaped(c) : String.valueOf(c));
      }
    }
    return shown.toString();
  }

  private static String escaped(char c) {
    return String.format("\\u%04x", (int) c);
  }

  /**
   * Refuses the first of {@code texts} that is no text, by its position: "text 3 holds ...",
   * {@code what} ("batch 2: ") before it.
   *
   * @throws StatusRuntimeException INVALID_ARGUMENT
   */
  static void requireTexts(String what, List<String> texts) {
    int index = 0;
    for (String text : texts) {
      String problem = text == null ? null : surrogateProblem(text);
      if (problem != null) {
        throw invalid(what + "text " + index + " " + problem);
      }
      index++;
    }
  }

  static StatusRuntimeException invalid(String description) {
    return Status.INVALID_ARGUMENT.withDescription(description).asRuntimeException();
  }

  /**
   * Where {@code message} holds a string that is no text, and why: "filter.must[0].match.text
   * holds &#92;ud800 at character 2, ..." (its fields as a path, map entries as {@code
   * set['key']}); {@code null} when it holds none.
   */
  static String problem(MessageOrBuilder message) {
    for (FieldDescriptor field : message.getDescriptorForType().getFields()) {
      FieldDescriptor.JavaType type = field.getJavaType();
      if (type != FieldDescriptor.JavaType.STRING && type != FieldDescriptor.JavaType.MESSAGE) {
        continue; // numbers (a vector's values), bytes, enums
      }
      String name = field.getName();
      if (field.isMapField()) {
        int count = message.getRepeatedFieldCount(field);
        for (int i = 0; i < count; i++) {
          String found = entryProblem(name, (MessageOrBuilder) message.getRepeatedField(field, i));
          if (found != null) {
            return found;
          }
        }
      } else if (field.isRepeated()) {
        int count = message.getRepeatedFieldCount(field);
        for (int i = 0; i < count; i++) {
          String found = valueProblem(message.getRepeatedField(field, i));
          if (found != null) {
            return name + "[" + i + "]" + found;
          }
        }
      } else if (type == FieldDescriptor.JavaType.STRING || message.hasField(field)) {
        String found = valueProblem(message.getField(field));
        if (found != null) {
          return name + found;
        }
      }
    }
    return null;
  }

  /** A map entry's problem: of its key ("set key 'a&#92;ud800' holds ..."), else of its value. */
  private static String entryProblem(String name, MessageOrBuilder entry) {
    FieldDescriptor keyField = entry.getDescriptorForType().findFieldByName("key");
    Object key = entry.getField(keyField);
    if (key instanceof String text) {
      String problem = surrogateProblem(text);
      if (problem != null) {
        return name + " key '" + shown(text) + "' " + problem;
      }
    }
    FieldDescriptor valueField = entry.getDescriptorForType().findFieldByName("value");
    String found = valueProblem(entry.getField(valueField));
    if (found != null) {
      String shownKey = key instanceof String text ? "'" + text + "'" : String.valueOf(key);
      return name + "[" + shownKey + "]" + found;
    }
    return null;
  }

  /** A field value's problem: " holds ..." for a string, ".path holds ..." inside a message. */
  private static String valueProblem(Object value) {
    if (value instanceof String text) {
      String problem = surrogateProblem(text);
      return problem == null ? null : " " + problem;
    }
    if (value instanceof MessageOrBuilder message) {
      String found = problem(message);
      return found == null ? null : "." + found;
    }
    return null; // a map value of a number or enum
  }

  /**
   * Refuses, before sending, a request holding a string that is no text ({@link
   * #problem(MessageOrBuilder)}), for every call on the client's channel: its own, and those of
   * {@code stub()}, {@code vectorStub()} and stubs built on {@code channel()}. A call of one
   * request (unary, server streaming) is closed with the {@code INVALID_ARGUMENT} before it starts
   * ({@link OneRequest}); a stream's {@code onNext} throws it, having sent nothing of that message.
   */
  static final class Check implements ClientInterceptor {
    @Override
    public <ReqT, RespT> ClientCall<ReqT, RespT> interceptCall(
        MethodDescriptor<ReqT, RespT> method, CallOptions options, Channel next) {
      ClientCall<ReqT, RespT> call = next.newCall(method, options);
      if (method.getType().clientSendsOneMessage()) {
        return new OneRequest<>(call);
      }
      return new ForwardingClientCall.SimpleForwardingClientCall<>(call) {
        @Override
        public void sendMessage(ReqT message) {
          String problem = message instanceof MessageOrBuilder request ? problem(request) : null;
          if (problem != null) {
            throw invalid(problem);
          }
          super.sendMessage(message);
        }
      };
    }
  }

  /**
   * A call of one request whose start waits for that request: one holding a string that is no
   * text closes the call with {@code INVALID_ARGUMENT} before anything starts. (Thrown from {@code
   * sendMessage} of a started call instead, it would leave a blocking stub's call unfinished: the
   * stub stops running its callbacks, and the channel's shutdown waits for it.)
   */
  private static final class OneRequest<ReqT, RespT> extends ClientCall<ReqT, RespT> {
    private final ClientCall<ReqT, RespT> call;
    private Listener<RespT> listener;
    private Metadata headers;
    private int requested;
    private Boolean compression;
    private boolean started; // call is
    private boolean refused; // listener is closed, call never started

    OneRequest(ClientCall<ReqT, RespT> call) {
      this.call = call;
    }

    @Override
    public synchronized void start(Listener<RespT> listener, Metadata headers) {
      this.listener = listener;
      this.headers = headers;
    }

    @Override
    public synchronized void request(int numMessages) {
      if (started) {
        call.request(numMessages);
      } else {
        requested += numMessages;
      }
    }

    @Override
    public synchronized void sendMessage(ReqT message) {
      if (refused) {
        return;
      }
      if (!started && message instanceof MessageOrBuilder request) {
        String problem = problem(request);
        if (problem != null) {
          refused = true;
          listener.onClose(Status.INVALID_ARGUMENT.withDescription(problem), new Metadata());
          return;
        }
      }
      startCall();
      call.sendMessage(message);
    }

    @Override
    public synchronized void halfClose() {
      if (!refused) {
        startCall();
        call.halfClose();
      }
    }

    @Override
    public synchronized void cancel(String message, Throwable cause) {
      if (refused) {
        return;
      }
      if (listener != null) {
        startCall(); // so that the call closes the listener
      }
      call.cancel(message, cause);
    }

    @Override
    public synchronized boolean isReady() {
      return started && call.isReady();
    }

    @Override
    public synchronized void setMessageCompression(boolean enabled) {
      if (started) {
        call.setMessageCompression(enabled);
      } else {
        compression = enabled;
      }
    }

    @Override
    public Attributes getAttributes() {
      return call.getAttributes();
    }

    private void startCall() {
      if (started) {
        return;
      }
      started = true;
      call.start(listener, headers);
      if (compression != null) {
        call.setMessageCompression(compression);
      }
      if (requested > 0) {
        call.request(requested);
      }
    }
  }
}
