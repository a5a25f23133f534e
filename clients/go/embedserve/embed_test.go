package embedserve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
)

const dims = 384 // all-MiniLM-L6-v2

func norm(v []float32) float64 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum)
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var worst float64
	for i := range a {
		worst = max(worst, math.Abs(float64(a[i])-float64(b[i])))
	}
	return worst
}

func TestModelInfo(t *testing.T) {
	client := dial(t)
	info, err := client.ModelInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetDimensions() != dims {
		t.Fatalf("dimensions = %d, want %d (model %s)", info.GetDimensions(), dims, info.GetModelId())
	}
}

func TestEmbedUnary(t *testing.T) {
	client := dial(t)
	texts := []string{"The cat sat on the mat.", "Vectors for everyone.", "ünïcødé ✓"}
	vectors, err := client.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vectors) != len(texts) {
		t.Fatalf("got %d vectors for %d texts", len(vectors), len(texts))
	}
	for i, v := range vectors {
		if len(v) != dims {
			t.Fatalf("vector %d has %d dimensions, want %d", i, len(v), dims)
		}
		if n := norm(v); math.Abs(n-1) > 1e-4 {
			t.Fatalf("vector %d has norm %f, want 1", i, n)
		}
	}
	if maxAbsDiff(vectors[0], vectors[1]) < 1e-3 {
		t.Fatal("different texts gave the same vector")
	}
}

// sameTextTolerance is how far one text's vector may move when it lands in another
// batch: rounding differs with the batch's shape, by about 1e-7 in float32 and up to
// 5e-3 in bfloat16 (README, "Same text, another batch"); different texts differ more.
func sameTextTolerance(t *testing.T, client *embedserve.Client) float64 {
	t.Helper()
	info, err := client.ModelInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.GetDtype() == "float32" {
		return 1e-6
	}
	return 5e-3
}

func TestEmbedSplitsLargeInputsInOrder(t *testing.T) {
	client := dial(t)
	texts := []string{"alpha", "beta", "gamma", "delta", "epsilon"}
	whole, err := client.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	split, err := client.Embed(context.Background(), texts, embedserve.WithBatchSize(2), embedserve.WithMaxInFlight(2))
	if err != nil {
		t.Fatal(err)
	}
	tolerance := sameTextTolerance(t, client)
	for i := range texts {
		if d := maxAbsDiff(whole[i], split[i]); d > tolerance {
			t.Fatalf("text %d: split request differs by %g", i, d)
		}
	}
}

func TestEmbedStreamManyBatchesInOrder(t *testing.T) {
	client := dial(t)
	const total, batchSize = 1024, 32
	texts := make([]string, total)
	for i := range texts {
		texts[i] = fmt.Sprintf("stream text %d", i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var vectors [][]float32
	next := 0
	for result, err := range client.EmbedStream(ctx, embedserve.Batches(texts, batchSize), embedserve.WithMaxInFlight(8)) {
		if err != nil {
			t.Fatal(err)
		}
		if result.Index != next || result.RequestID != fmt.Sprint(next) || result.Response.GetRequestId() != fmt.Sprint(next) {
			t.Fatalf("result %d: index %d, request_id %q", next, result.Index, result.Response.GetRequestId())
		}
		if len(result.Vectors) != batchSize {
			t.Fatalf("batch %d: %d vectors, want %d", next, len(result.Vectors), batchSize)
		}
		vectors = append(vectors, result.Vectors...)
		next++
	}
	if len(vectors) != total {
		t.Fatalf("got %d vectors for %d texts", len(vectors), total)
	}
	// Spot-check order against unary calls.
	tolerance := sameTextTolerance(t, client)
	for _, i := range []int{0, 517, total - 1} {
		want, err := client.Embed(ctx, texts[i:i+1])
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(vectors[i], want[0]); d > tolerance || len(vectors[i]) != dims {
			t.Fatalf("text %d: stream vector differs from unary by %g", i, d)
		}
	}
}

func TestEmbedStreamStopsEarly(t *testing.T) {
	client := dial(t)
	texts := make([]string, 200)
	for i := range texts {
		texts[i] = fmt.Sprint("text ", i)
	}
	seen := 0
	for _, err := range client.EmbedStream(context.Background(), embedserve.Batches(texts, 10)) {
		if err != nil {
			t.Fatal(err)
		}
		if seen++; seen == 3 {
			break
		}
	}
	if seen != 3 {
		t.Fatalf("saw %d results", seen)
	}
}

// A producer that has given one batch and waits for more: the context's
// deadline still ends the stream, after that batch's result.
func TestEmbedStreamEndsWithItsContextWhileTheProducerWaits(t *testing.T) {
	client := dial(t)
	batches := make(chan []string, 1)
	batches <- []string{"the only batch"}
	defer close(batches)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	results := make(chan int, 1)
	var last error
	go func() {
		n := 0
		for _, err := range client.EmbedStream(ctx, embedserve.FromChannel(batches)) {
			if err != nil {
				last = err
				continue
			}
			n++
		}
		results <- n
	}()
	select {
	case n := <-results:
		if n != 1 || status.Code(last) != codes.DeadlineExceeded {
			t.Fatalf("%d results, then %v; want 1, then DeadlineExceeded", n, last)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("EmbedStream still running 12 s after its deadline")
	}
}

func TestEmbedStreamReportsServerError(t *testing.T) {
	client := dial(t)
	batches := embedserve.Batches([]string{"a", "b", "c"}, 1)
	var last error
	for _, err := range client.EmbedStream(context.Background(), batches, embedserve.WithDimensions(100000)) {
		last = err
	}
	if status.Code(last) != codes.InvalidArgument {
		t.Fatalf("stream ended with %v, want InvalidArgument", last)
	}
}

func TestDeadlineExceeded(t *testing.T) {
	client := dial(t)
	texts := make([]string, 2000)
	for i := range texts {
		texts[i] = strings.Repeat(fmt.Sprintf("word%d ", i), 40)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := client.Embed(ctx, texts, embedserve.WithBatchSize(len(texts)))
	if code := status.Code(err); code != codes.DeadlineExceeded {
		t.Fatalf("status.Code(err) = %v (err %v), want DeadlineExceeded", code, err)
	}
	// The split path reports the same code.
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := client.Embed(ctx, texts); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("split request: status.Code(err) = %v (err %v), want DeadlineExceeded", status.Code(err), err)
	}
	// The server keeps serving.
	if _, err := client.Embed(context.Background(), []string{"still alive"}); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidArgument(t *testing.T) {
	client := dial(t)
	_, err := client.Embed(context.Background(), []string{"x"}, embedserve.WithDimensions(100000))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status.Code(err) = %v (err %v), want InvalidArgument", status.Code(err), err)
	}
}

// TestSameVectorsAsPythonClient compares with embedserve.client.EmbedClient
// run by the repository's virtualenv (EMBEDSERVE_PYTHON overrides it).
func TestSameVectorsAsPythonClient(t *testing.T) {
	python := envOr("EMBEDSERVE_PYTHON", filepath.Join(repoRoot(), ".venv", "bin", "python"))
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("python with the embedserve client needed (set EMBEDSERVE_PYTHON): %v", err)
	}
	texts := []string{"The quick brown fox jumps over the lazy dog.", "embedding parity", "Grüße aus Köln", "a"}
	const script = `
import json, sys
from embedserve.client import EmbedClient
with EmbedClient(sys.argv[1]) as client:
    vectors = client.embed(json.loads(sys.argv[2]))
json.dump(vectors.tolist(), sys.stdout)
`
	input, _ := json.Marshal(texts)
	cmd := exec.Command(python, "-c", script, target, string(input))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python client: %v", err)
	}
	var want [][]float64
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("python output: %v", err)
	}

	got, err := dial(t).Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(texts) || len(got) != len(texts) {
		t.Fatalf("python gave %d vectors, go %d, for %d texts", len(want), len(got), len(texts))
	}
	var worst float64
	for i := range texts {
		if len(want[i]) != len(got[i]) {
			t.Fatalf("text %d: python %d dimensions, go %d", i, len(want[i]), len(got[i]))
		}
		for j := range want[i] {
			worst = max(worst, math.Abs(want[i][j]-float64(got[i][j])))
		}
	}
	t.Logf("max abs difference to the Python client: %g", worst)
	if worst > 1e-6 {
		t.Fatalf("max abs difference to the Python client %g > 1e-6", worst)
	}
}
