package dev.embedserve.client;

import static dev.embedserve.client.Vectors.document;
import static dev.embedserve.client.Vectors.struct;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.protobuf.Struct;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.DoubleAccumulator;
import java.util.concurrent.atomic.DoubleAdder;
import java.util.concurrent.atomic.LongAccumulator;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Documents and payloads refused before anything is sent, with the Python client's rule and
 * words: integers a Struct's doubles would change, nesting past the server's limit, null fields.
 */
class PayloadChecksTest {
  private static final String PAST =
      " is past 2**53, and a protobuf Struct carries numbers as doubles, which would change it to ";
  private static final String AS_STRING =
      "; send it as a string (or over HTTP, whose JSON keeps it)";

  /** {@code n} objects, each holding the next under "a", around a string. */
  private static Object nested(int n) {
    Object value = "leaf";
    for (int i = 0; i < n; i++) {
      value = Map.of("a", value);
    }
    return value;
  }

  private static void assertRefused(String description, Executable build) {
    StatusRuntimeException e = assertThrows(StatusRuntimeException.class, build);
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
    assertEquals(description, e.getStatus().getDescription());
  }

  @Test
  void integersThatADoubleWouldChangeAreRefused() {
    assertRefused(
        "document 'big': payload 'n': 9007199254740993" + PAST + "9007199254740992" + AS_STRING,
        () -> document("big", "x", Map.of("n", (1L << 53) + 1)));
    assertRefused(
        "document 'max': payload 'n': 9223372036854775807"
            + PAST
            + "9223372036854775808"
            + AS_STRING,
        () -> document("max", new float[] {1}, Map.of("n", Long.MAX_VALUE)));
    assertRefused(
        "document 'l': payload 'ids[1].id': 1152921504606846977"
            + PAST
            + "1152921504606846976"
            + AS_STRING,
        () -> document("l", "x", Map.of("ids", List.of(1, Map.of("id", (1L << 60) + 1)))));
    assertRefused(
        "payload 'n': 18446744073709551617" + PAST + "18446744073709551616" + AS_STRING,
        () -> struct(Map.of("n", BigInteger.ONE.shiftLeft(64).add(BigInteger.ONE))));
    assertRefused(
        "payload 'n': 9007199254740993" + PAST + "9007199254740992" + AS_STRING,
        () -> struct(Map.of("n", new BigDecimal("9007199254740993.000"))));
    assertRefused(
        "9007199254740993" + PAST + "9007199254740992" + AS_STRING,
        () -> Vectors.value((1L << 53) + 1));
    // Every double, and every integer a double holds, is sent as it is.
    Struct exact =
        struct(
            Map.of(
                "a", 1L << 53,
                "b", (1L << 53) + 2,
                "c", Long.MIN_VALUE,
                "d", BigInteger.ONE.shiftLeft(70),
                "e", new BigDecimal("0.1"),
                "f", 1e300,
                "g", Integer.MAX_VALUE));
    assertEquals((double) ((1L << 53) + 2), exact.getFieldsOrThrow("b").getNumberValue());
    assertEquals(0x1p70, exact.getFieldsOrThrow("d").getNumberValue());
    assertEquals(0.1, exact.getFieldsOrThrow("e").getNumberValue());
  }

  @Test
  void everyIntegerNumberIsCheckedByItsLongValue() {
    long past = (1L << 53) + 1;
    LongAccumulator accumulated = new LongAccumulator(Long::sum, past);
    assertRefused(
        "document 'acc': payload 'n': 9007199254740993" + PAST + "9007199254740992" + AS_STRING,
        () -> document("acc", "x", Map.of("n", accumulated)));
    AtomicLong atomic = new AtomicLong(past);
    LongAdder adder = new LongAdder();
    adder.add(past);
    Number own = // a Number of the caller's own, holding an integer
        new Number() {
          @Override
          public int intValue() {
            return (int) past;
          }

          @Override
          public long longValue() {
            return past;
          }

          @Override
          public float floatValue() {
            return past;
          }

          @Override
          public double doubleValue() {
            return past;
          }
        };
    for (Number n : List.of(atomic, adder, own)) {
      assertRefused(
          "payload 'n': 9007199254740993" + PAST + "9007199254740992" + AS_STRING,
          () -> struct(Map.of("n", n)));
    }
    // Those a double holds are sent; a double-valued Number is sent as its double.
    DoubleAdder half = new DoubleAdder();
    half.add(2.5);
    Struct exact =
        struct(
            Map.of(
                "a", new LongAccumulator(Long::sum, 1L << 53),
                "b", new LongAccumulator(Long::max, Long.MIN_VALUE),
                "c", half,
                "d", new DoubleAccumulator(Double::sum, 0x1p70)));
    assertEquals(0x1p53, exact.getFieldsOrThrow("a").getNumberValue());
    assertEquals(-0x1p63, exact.getFieldsOrThrow("b").getNumberValue());
    assertEquals(2.5, exact.getFieldsOrThrow("c").getNumberValue());
    assertEquals(0x1p70, exact.getFieldsOrThrow("d").getNumberValue());
  }

  @Test
  void nestingPastTheServersLimitIsRefused() {
    assertRefused(
        "document 'd33': payload.p"
            + ".a".repeat(31)
            + ": objects and arrays nest at most 32 deep",
        () -> document("d33", "x", Map.of("p", nested(32))));
    assertRefused(
        "document 'l33': payload.l[0][0]"
            + ".a".repeat(29)
            + ": objects and arrays nest at most 32 deep",
        () -> document("l33", "x", Map.of("l", List.of((Object) new Object[] {nested(30)}))));
    assertRefused(
        "payload.p" + ".a".repeat(31) + ": objects and arrays nest at most 32 deep",
        () -> struct(Map.of("p", nested(32))));
    // 32 levels, the payload's own object the first, are the server's limit: allowed.
    document("d32", "x", Map.of("p", nested(31)));
    document("l32", "x", Map.of("l", Arrays.asList(List.of(nested(29)))));
  }

  @Test
  void nullFieldsAreRefusedByName() {
    assertRefused("a document needs an id, got null", () -> document(null, "x"));
    assertRefused("a document needs an id, got null", () -> document(null, new float[] {1}, null));
    assertRefused("document '7' needs a text, got null", () -> document("7", (String) null));
    assertRefused(
        "document '7' needs a vector, got null", () -> document("7", (float[]) null, Map.of()));
    assertRefused(
        "document '7': payload.m: keys must be strings, got 1",
        () -> document("7", "x", Map.of("m", Map.of(1, "a"))));
    assertRefused(
        "document '7': payload.m[1]: unsupported payload value of type java.lang.Object",
        () -> document("7", "x", Map.of("m", List.of("a", new Object()))));
  }
}
