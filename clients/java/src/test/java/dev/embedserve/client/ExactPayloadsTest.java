package dev.embedserve.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ListValue;
import com.google.protobuf.NullValue;
import com.google.protobuf.Struct;
import com.google.protobuf.Value;
import dev.embedserve.client.EmbedserveClient.ScrollPage;
import dev.embedserve.client.EmbedserveClient.Stored;
import dev.embedserve.v1.GetRequest;
import dev.embedserve.v1.GetResponse;
import dev.embedserve.v1.ScrollOrder;
import dev.embedserve.v1.ScrollRequest;
import dev.embedserve.v1.ScrollResponse;
import dev.embedserve.v1.StoredDocument;
import dev.embedserve.v1.VectorServiceGrpc;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * Exact payloads (GetRequest and ScrollRequest {@code exact_payloads}), no server: the JSON reader
 * ({@link PayloadJson}), then get, scroll and scrollAll against a fake VectorService that answers
 * as the server does (payload_json when asked for exact payloads, else the Struct).
 */
class ExactPayloadsTest {
  private static final String EVERY_KIND =
      "{\"n\":9007199254740993,\"min\":-9223372036854775808,\"max\":9223372036854775807,"
          + "\"past\":9223372036854775808,\"half\":1.5,\"huge\":1e+300,\"small\":-2.5E-7,\"zero\":0,"
          + "\"s\":\"9007199254740993\",\"t\":true,\"f\":false,\"none\":null,"
          + "\"list\":[1,2.5,{\"id\":1152921504606846977},[]],\"obj\":{\"deep\":[[-3]],\"e\":{}},"
          + "\"u\":\"\\u00e9\\ud83d\\ude00 \\\"\\\\\\/\\b\\f\\n\\r\\t\u00e9\"}";

  private static Map<String, Object> everyKindExact() {
    Map<String, Object> want = new LinkedHashMap<>();
    want.put("n", 9007199254740993L);
    want.put("min", Long.MIN_VALUE);
    want.put("max", Long.MAX_VALUE);
    want.put("past", 9223372036854775808.0);
    want.put("half", 1.5);
    want.put("huge", 1e300);
    want.put("small", -2.5e-7);
    want.put("zero", 0L);
    want.put("s", "9007199254740993");
    want.put("t", true);
    want.put("f", false);
    want.put("none", null);
    want.put("list", List.of(1L, 2.5, Map.of("id", 1152921504606846977L), List.of()));
    want.put("obj", Map.of("deep", List.of(List.of(-3L)), "e", Map.of()));
    want.put("u", "é😀 \"\\/\b\f\n\r\té");
    return want;
  }

  @Test
  void readsEveryKindWithIntegersExact() {
    Map<String, Object> payload = PayloadJson.parseObject(EVERY_KIND);
    assertEquals(everyKindExact(), payload);
    assertEquals(List.copyOf(everyKindExact().keySet()), List.copyOf(payload.keySet())); // in order
    assertEquals(Long.class, payload.get("n").getClass());
    assertEquals(Double.class, payload.get("half").getClass());
    assertThrows(UnsupportedOperationException.class, () -> payload.put("x", 1));
    assertEquals(Map.of(), PayloadJson.parseObject(" {\n} \t"));
    assertEquals(Map.of("a", 2L), PayloadJson.parseObject("{\"a\":1,\"a\":2}")); // the last one
  }

  @Test
  void refusesWhatIsNoJsonObject() {
    for (String text :
        List.of(
            "", "[1]", "null", "\"x\"", "{\"a\":1} {}", "{\"a\":1}]", "{\"a\":", "{a:1}",
            "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":+1}", "{\"a\":-}", "{\"a\":1e}",
            "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":1e999}", "{\"a\":tru}", "{\"a\":[1,]}",
            "{\"a\":1,}", "{\"a\" 1}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12G4\"}", "{\"a\":\"\t\"}",
            "{\"a\":\"open}", "{\"a\":[1 2]}")) {
      IllegalArgumentException e =
          assertThrows(IllegalArgumentException.class, () -> PayloadJson.parseObject(text), text);
      // Where: the character for what is no object, else Gson's line, column and path.
      String where = "expected a JSON object, found .*|.* at (line 1 column \\d+ )?path \\$.*";
      assertTrue(e.getMessage().matches(where), e.getMessage());
    }
    assertEquals(
        "Malformed JSON at line 1 column 6 path $.a",
        assertThrows(IllegalArgumentException.class, () -> PayloadJson.parseObject("{\"a\":1.}"))
            .getMessage());
    assertEquals(
        "Number 1e999 out of a double's range at path $.a",
        assertThrows(IllegalArgumentException.class, () -> PayloadJson.parseObject("{\"a\":1e999}"))
            .getMessage());
    String deep = "{\"a\":" + "[".repeat(600) + "]".repeat(600) + "}";
    assertTrue(
        assertThrows(IllegalArgumentException.class, () -> PayloadJson.parseObject(deep))
            .getMessage()
            .startsWith("Nesting limit 512 reached at line 1 column 518 path $.a[0][0]"));
    // 512 deep (the object and 511 arrays) is the most.
    String deepest = "{\"a\":" + "[".repeat(511) + "]".repeat(511) + "}";
    assertEquals(1, PayloadJson.parseObject(deepest).size());
    assertEquals(Map.of("z", 0L, "d", -0.0), PayloadJson.parseObject("{\"z\":-0,\"d\":-0.0}"));
  }

  /** Documents a, b, c, ...: the payloads; Scroll answers one a page (cursor: its index). */
  private static final class FakeStored extends VectorServiceGrpc.VectorServiceImplBase {
    final List<GetRequest> gets = new CopyOnWriteArrayList<>();
    final List<ScrollRequest> scrolls = new CopyOnWriteArrayList<>();
    private final List<String> payloads;

    FakeStored(String... payloads) {
      this.payloads = Arrays.asList(payloads);
    }

    private StoredDocument document(int i, boolean exact) {
      StoredDocument.Builder doc = StoredDocument.newBuilder().setId(String.valueOf((char) ('a' + i)));
      if (exact) {
        return doc.setPayloadJson(payloads.get(i)).build();
      }
      return doc.setPayload(asStruct(payloads.get(i))).build();
    }

    /** The payload as the server's Struct: every number a double (2**53+1 changed). */
    private static Struct asStruct(String json) {
      Struct.Builder struct = Struct.newBuilder();
      PayloadJson.parseObject(json).forEach((key, value) -> struct.putFields(key, asValue(value)));
      return struct.build();
    }

    private static Value asValue(Object value) {
      Value.Builder out = Value.newBuilder();
      if (value == null) {
        return out.setNullValue(NullValue.NULL_VALUE).build();
      } else if (value instanceof Number n) {
        return out.setNumberValue(n.doubleValue()).build();
      } else if (value instanceof String s) {
        return out.setStringValue(s).build();
      } else if (value instanceof Boolean b) {
        return out.setBoolValue(b).build();
      } else if (value instanceof List<?> list) {
        ListValue.Builder values = ListValue.newBuilder();
        list.forEach(item -> values.addValues(asValue(item)));
        return out.setListValue(values).build();
      }
      Struct.Builder struct = Struct.newBuilder();
      ((Map<?, ?>) value).forEach((key, item) -> struct.putFields((String) key, asValue(item)));
      return out.setStructValue(struct).build();
    }

    @Override
    public void get(GetRequest request, StreamObserver<GetResponse> responses) {
      gets.add(request);
      GetResponse.Builder response = GetResponse.newBuilder();
      for (int i = 0; i < payloads.size(); i++) {
        response.addDocuments(document(i, request.getExactPayloads()));
      }
      responses.onNext(response.build());
      responses.onCompleted();
    }

    @Override
    public void scroll(ScrollRequest request, StreamObserver<ScrollResponse> responses) {
      scrolls.add(request);
      int i = request.getCursor().isEmpty() ? 0 : Integer.parseInt(request.getCursor());
      ScrollResponse.Builder response =
          ScrollResponse.newBuilder().addDocuments(document(i, request.getExactPayloads()));
      if (i + 1 < payloads.size()) {
        response.setNextCursor(String.valueOf(i + 1));
      }
      responses.onNext(response.build());
      responses.onCompleted();
    }
  }

  @Test
  void getScrollAndScrollAllReadExactPayloads() throws Exception {
    FakeStored fake = new FakeStored(EVERY_KIND, "{}", "{\"k\":7}");
    FakeServers.withFake(
        fake,
        client -> {
          GetRequest exact =
              GetRequest.newBuilder().setCollection("c").addIds("a").setExactPayloads(true).build();
          List<Stored> stored = client.get(exact);
          assertTrue(fake.gets.get(0).getExactPayloads());
          assertEquals(everyKindExact(), stored.get(0).payload());
          assertEquals(Map.of(), stored.get(1).payload());
          assertEquals(7L, stored.get(2).payload().get("k"));

          // Without exact payloads: the Struct, every number a Double (2**53+1 changed).
          stored = client.get("c", List.of("a"), false);
          assertFalse(fake.gets.get(1).getExactPayloads());
          assertEquals(9007199254740992.0, stored.get(0).payload().get("n"));
          assertEquals(7.0, stored.get(2).payload().get("k"));

          ScrollPage page =
              client.scroll(ScrollRequest.newBuilder().setCollection("c").setExactPayloads(true).build());
          assertEquals(everyKindExact(), page.documents().get(0).payload());
          assertEquals("1", page.nextCursor());

          fake.scrolls.clear();
          ScrollRequest request =
              ScrollRequest.newBuilder()
                  .setCollection("c")
                  .setLimit(1)
                  .setWithVectors(true)
                  .setExactPayloads(true)
                  .setOrderBy(ScrollOrder.newBuilder().setKey("k"))
                  .build();
          List<Map<String, Object>> payloads = client.scrollAll(request).map(Stored::payload).toList();
          assertEquals(List.of(everyKindExact(), Map.of(), Map.of("k", 7L)), payloads);
          assertEquals(
              List.of(
                  request,
                  request.toBuilder().setCursor("1").build(),
                  request.toBuilder().setCursor("2").build()),
              fake.scrolls);
          return null;
        });
  }

  @Test
  void aPayloadJsonThatIsNoObjectIsInternal() throws Exception {
    FakeServers.withFake(
        new FakeStored("[1]"),
        client -> {
          StatusRuntimeException e =
              assertThrows(
                  StatusRuntimeException.class,
                  () ->
                      client.get(
                          GetRequest.newBuilder().setCollection("c").setExactPayloads(true).build()));
          assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
          assertEquals(
              "document 'a': payload_json: expected a JSON object, found '[' at character 1",
              e.getStatus().getDescription());
          e =
              assertThrows(
                  StatusRuntimeException.class,
                  () ->
                      client.scroll(
                          ScrollRequest.newBuilder().setCollection("c").setExactPayloads(true).build()));
          assertEquals(Status.Code.INTERNAL, e.getStatus().getCode());
          return null;
        });
  }
}
