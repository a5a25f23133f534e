package embedserve_test

import (
	"bytes"
	"context"
	"io"
	"math"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

var quantizedTexts = []string{
	"The cat sat on the mat.",
	"Vectors for everyone.",
	"ünïcødé ✓",
	"Paris is the capital of France.",
	"12345 67890",
}

// int8Of is INT8's value of each dimension of v, reckoned in float32 as the
// server reckons it: rint(v * (127 / max|v|)), halves to even. scaled holds
// v * (127 / max|v|) before rounding.
func int8Of(v []float32) (want []int8, scaled []float32) {
	var largest float32
	for _, x := range v {
		largest = max(largest, float32(math.Abs(float64(x))))
	}
	scale := float32(127)
	if largest > 0 {
		scale = float32(127) / largest
	}
	want = make([]int8, len(v))
	scaled = make([]float32, len(v))
	for i, x := range v {
		scaled[i] = float32(x * scale) // the conversion keeps the product in float32
		want[i] = int8(min(127, max(-127, math.RoundToEven(float64(scaled[i])))))
	}
	return want, scaled
}

// embedBoth embeds texts as float32 vectors and in precision, with the same options.
func embedBoth(t *testing.T, client *embedserve.Client, texts []string, precision pb.Precision, opts ...embedserve.EmbedOption) ([][]float32, [][]byte) {
	t.Helper()
	vectors, err := client.Embed(context.Background(), texts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	quantized, err := client.EmbedQuantized(context.Background(), texts, precision, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(vectors) != len(texts) || len(quantized) != len(texts) {
		t.Fatalf("%d texts: %d vectors, %d quantized", len(texts), len(vectors), len(quantized))
	}
	return vectors, quantized
}

// checkInt8 compares INT8 rows with int8Of the float vectors of the same texts.
// They are equal: both answers come from the same vectors. A value whose scaled
// float lies within 1e-3 of a rounding tie (x.5) may differ by 1, in case the
// two requests' vectors differ in their last bits; there is none in practice.
func checkInt8(t *testing.T, vectors [][]float32, rows [][]byte) {
	t.Helper()
	for i, v := range vectors {
		if len(rows[i]) != len(v) {
			t.Fatalf("text %d: %d bytes for %d dimensions", i, len(rows[i]), len(v))
		}
		want, scaled := int8Of(v)
		full := false
		for j, b := range rows[i] {
			got := int8(b)
			full = full || got == 127 || got == -127
			if got == want[j] {
				continue
			}
			nearTie := math.Abs(math.Abs(float64(scaled[j])-math.Trunc(float64(scaled[j])))-0.5) < 1e-3
			if !nearTie || math.Abs(float64(got)-float64(want[j])) > 1 {
				t.Fatalf("text %d, dimension %d: int8 %d, want %d (rint of %v)", i, j, got, want[j], scaled[j])
			}
			t.Logf("text %d, dimension %d: int8 %d, want %d (%v is a near tie)", i, j, got, want[j], scaled[j])
		}
		if !full {
			t.Fatalf("text %d: no value is ±127", i)
		}
	}
}

func TestEmbedQuantizedInt8(t *testing.T) {
	vectors, rows := embedBoth(t, dial(t), quantizedTexts, pb.Precision_PRECISION_INT8)
	for i, v := range vectors {
		if len(v) != dims {
			t.Fatalf("text %d: %d dimensions, want %d", i, len(v), dims)
		}
	}
	checkInt8(t, vectors, rows)
}

func TestEmbedQuantizedSplitsLargeInputsInOrder(t *testing.T) {
	// Batches of 2, one at a time: Embed's vectors come from the same batches.
	opts := []embedserve.EmbedOption{embedserve.WithBatchSize(2), embedserve.WithMaxInFlight(1)}
	vectors, rows := embedBoth(t, dial(t), quantizedTexts, pb.Precision_PRECISION_INT8, opts...)
	checkInt8(t, vectors, rows)
}

func TestEmbedQuantizedUint8IsInt8Plus128(t *testing.T) {
	client := dial(t)
	signed, err := client.EmbedQuantized(context.Background(), quantizedTexts, pb.Precision_PRECISION_INT8)
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := client.EmbedQuantized(context.Background(), quantizedTexts, pb.Precision_PRECISION_UINT8)
	if err != nil {
		t.Fatal(err)
	}
	for i := range quantizedTexts {
		if len(signed[i]) != dims || len(unsigned[i]) != dims {
			t.Fatalf("text %d: int8 %d bytes, uint8 %d, want %d", i, len(signed[i]), len(unsigned[i]), dims)
		}
		for j := range signed[i] {
			if want := int(int8(signed[i][j])) + 128; int(unsigned[i][j]) != want {
				t.Fatalf("text %d, dimension %d: uint8 %d, want int8 %d + 128", i, j, unsigned[i][j], int8(signed[i][j]))
			}
		}
	}
}

func TestEmbedQuantizedBinaryIsTheSignBits(t *testing.T) {
	client := dial(t)
	const width = 100
	truncate := embedserve.WithDimensions(width)
	vectors, ubinary := embedBoth(t, client, quantizedTexts, pb.Precision_PRECISION_UBINARY, truncate)
	binary, err := client.EmbedQuantized(context.Background(), quantizedTexts, pb.Precision_PRECISION_BINARY, truncate)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vectors {
		if len(v) != width || len(ubinary[i]) != 13 || len(binary[i]) != 13 {
			t.Fatalf("text %d: %d dimensions, ubinary %d bytes, binary %d, want %d and 13", i, len(v), len(ubinary[i]), len(binary[i]), width)
		}
		for j := range 13 * 8 {
			bit := ubinary[i][j/8]>>(7-j%8)&1 == 1 // the first dimension is the highest bit
			if want := j < width && v[j] > 0; bit != want {
				t.Fatalf("text %d, bit %d: %v, want %v (value %v)", i, j, bit, want, v[min(j, width-1)])
			}
		}
		flipped := make([]byte, len(ubinary[i]))
		for j, b := range ubinary[i] {
			flipped[j] = b ^ 0x80 // b - 128 as a signed byte
		}
		if !bytes.Equal(binary[i], flipped) {
			t.Fatalf("text %d: binary %v, want ubinary XOR 0x80 %v", i, binary[i], flipped)
		}
	}
}

func TestEmbedQuantizedRefusesFloat32(t *testing.T) {
	client := dial(t)
	for _, precision := range []pb.Precision{pb.Precision_PRECISION_FLOAT32, pb.Precision_PRECISION_UNSPECIFIED} {
		rows, err := client.EmbedQuantized(context.Background(), quantizedTexts, precision)
		if status.Code(err) != codes.InvalidArgument || rows != nil {
			t.Fatalf("%s: %d rows, err %v, want InvalidArgument", precision, len(rows), err)
		}
	}
	if _, err := client.EmbedQuantized(context.Background(), nil, pb.Precision_PRECISION_INT8); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no texts: err %v, want InvalidArgument", err)
	}
}

// streamQuantized sends texts to EmbedQuantizedStream in batches of batchSize and
// joins the results' rows, checking each result's index, vectors and row count.
func streamQuantized(t *testing.T, client *embedserve.Client, texts []string, batchSize int, precision pb.Precision, opts ...embedserve.EmbedOption) [][]byte {
	t.Helper()
	var rows [][]byte
	next := 0
	for result, err := range client.EmbedQuantizedStream(context.Background(), embedserve.Batches(texts, batchSize), precision, opts...) {
		if err != nil {
			t.Fatal(err)
		}
		want := min(batchSize, len(texts)-next*batchSize)
		if result.Index != next || result.Vectors != nil || len(result.Quantized) != want {
			t.Fatalf("%s result %d: index %d, %d vectors, %d rows, want %d rows", precision, next, result.Index, len(result.Vectors), len(result.Quantized), want)
		}
		rows = append(rows, result.Quantized...)
		next++
	}
	if len(rows) != len(texts) {
		t.Fatalf("%s: %d rows for %d texts", precision, len(rows), len(texts))
	}
	return rows
}

func TestEmbedQuantizedStream(t *testing.T) {
	client := dial(t)
	// Batches of 2, one at a time, for the stream and the unary calls alike: each
	// text's floats then come from the same batch, so the bytes are the same.
	const batchSize = 2
	opts := []embedserve.EmbedOption{embedserve.WithBatchSize(batchSize), embedserve.WithMaxInFlight(1)}
	vectors, err := client.Embed(context.Background(), quantizedTexts, opts...)
	if err != nil {
		t.Fatal(err)
	}

	int8Rows := streamQuantized(t, client, quantizedTexts, batchSize, pb.Precision_PRECISION_INT8, opts...)
	checkInt8(t, vectors, int8Rows)
	binaryRows := streamQuantized(t, client, quantizedTexts, batchSize, pb.Precision_PRECISION_BINARY, opts...)
	for i, v := range vectors {
		if len(binaryRows[i]) != dims/8 {
			t.Fatalf("text %d: binary %d bytes, want %d", i, len(binaryRows[i]), dims/8)
		}
		for j := range dims {
			// The first dimension is the highest bit; binary is each byte minus 128.
			bit := (binaryRows[i][j/8]^0x80)>>(7-j%8)&1 == 1
			if want := v[j] > 0; bit != want {
				t.Fatalf("text %d, bit %d: %v, want %v (value %v)", i, j, bit, want, v[j])
			}
		}
	}

	for precision, streamed := range map[pb.Precision][][]byte{pb.Precision_PRECISION_INT8: int8Rows, pb.Precision_PRECISION_BINARY: binaryRows} {
		unary, err := client.EmbedQuantized(context.Background(), quantizedTexts, precision, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range quantizedTexts {
			if !bytes.Equal(streamed[i], unary[i]) {
				t.Fatalf("%s, text %d: stream %v, EmbedQuantized %v", precision, i, streamed[i], unary[i])
			}
		}
	}
}

func TestEmbedQuantizedStreamRefusesFloat32(t *testing.T) {
	client := dial(t)
	for _, precision := range []pb.Precision{pb.Precision_PRECISION_FLOAT32, pb.Precision_PRECISION_UNSPECIFIED} {
		pulled := 0
		batches := func(yield func([]string) bool) {
			pulled++
			yield(quantizedTexts)
		}
		var errs []error
		for result, err := range client.EmbedQuantizedStream(context.Background(), batches, precision) {
			if err == nil {
				t.Fatalf("%s: result %d with no error", precision, result.Index)
			}
			errs = append(errs, err)
		}
		if len(errs) != 1 || status.Code(errs[0]) != codes.InvalidArgument || pulled != 0 {
			t.Fatalf("%s: errors %v, batches pulled %d; want one InvalidArgument and none pulled", precision, errs, pulled)
		}
	}
}

// floatStream is an EmbedStream from before quantized output: it ignores
// precision and answers each text with a float vector, recording the precision
// each request carried.
type floatStream struct {
	pb.UnimplementedEmbeddingServiceServer
	precisions chan pb.Precision
	priorities chan pb.Priority
}

func (f *floatStream) EmbedStream(stream grpc.BidiStreamingServer[pb.EmbedStreamRequest, pb.EmbedStreamResponse]) error {
	for {
		request, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f.precisions <- request.GetPrecision()
		f.priorities <- request.GetOptions().GetPriority()
		answer := &pb.EmbedStreamResponse{RequestId: request.GetRequestId(), Dimensions: 2}
		for range request.GetInputs() {
			answer.Embeddings = append(answer.Embeddings, &pb.Embedding{Values: []float32{1, 2}})
		}
		if err := stream.Send(answer); err != nil {
			return err
		}
	}
}

// startFloatStream serves a floatStream on a loopback port and dials it.
func startFloatStream(t *testing.T) (*floatStream, *embedserve.Client) {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	fake := &floatStream{precisions: make(chan pb.Precision, 100), priorities: make(chan pb.Priority, 100)}
	pb.RegisterEmbeddingServiceServer(server, fake)
	go server.Serve(listener)
	t.Cleanup(server.Stop)
	client, err := embedserve.Dial(listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return fake, client
}

func TestEmbedQuantizedStreamFloatAnswerIsUnimplemented(t *testing.T) {
	fake, client := startFloatStream(t)

	var errs []error
	for _, err := range client.EmbedQuantizedStream(context.Background(), embedserve.Batches(quantizedTexts, 2), pb.Precision_PRECISION_UINT8) {
		if err == nil {
			t.Fatal("a result from floats")
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || status.Code(errs[0]) != codes.Unimplemented {
		t.Fatalf("errors %v, want one Unimplemented", errs)
	}
	if got := <-fake.precisions; got != pb.Precision_PRECISION_UINT8 {
		t.Fatalf("the request carried precision %s, want UINT8", got)
	}
}

func TestWithPriorityRidesOnEveryRequest(t *testing.T) {
	fake, client := startFloatStream(t)

	batches := 0
	for _, err := range client.EmbedStream(context.Background(), embedserve.Batches(quantizedTexts, 2), embedserve.WithPriority(pb.Priority_PRIORITY_INTERACTIVE)) {
		if err != nil {
			t.Fatal(err)
		}
		batches++
	}
	for range batches {
		if got := <-fake.priorities; got != pb.Priority_PRIORITY_INTERACTIVE {
			t.Fatalf("a request carried priority %s, want INTERACTIVE", got)
		}
	}
}
