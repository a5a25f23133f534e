package embedserve_test

// Strings that are not UTF-8 are refused before sending, with
// codes.InvalidArgument naming where they are (protobuf would refuse them when
// grpc marshals the message, as an Internal error naming nothing). Against the
// fake VectorService (no model), where a call that passes the checks ends with
// Unimplemented, and the fake EmbedStream, which answers every batch.

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

func TestStringsThatAreNotUTF8AreRefused(t *testing.T) {
	fake := &fakeIngest{okBatches: 100, received: make(chan *pb.IngestStreamRequest, 100)}
	client := serveFake(t, fake)
	ctx := context.Background()
	refused := func(call string, err error, want string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
			t.Errorf("%s: %v\nwant InvalidArgument %q", call, err, want)
		}
	}
	texts := []string{"a", "b", "c", "d", "abc\xffdef"}
	_, err := client.Embed(ctx, texts)
	refused("Embed", err, "embedserve: text 4 is not UTF-8 (byte 0xff at byte offset 3)")
	_, err = client.Embed(ctx, texts, embedserve.WithBatchSize(2)) // the text's place in texts, not in its request
	refused("Embed in batches", err, "embedserve: text 4 is not UTF-8 (byte 0xff at byte offset 3)")
	_, err = client.EmbedQuantized(ctx, []string{"é\xc3"}, pb.Precision_PRECISION_INT8) // a cut 2-byte character
	refused("EmbedQuantized", err, "embedserve: text 0 is not UTF-8 (byte 0xc3 at byte offset 2)")

	for _, tc := range []struct {
		name string
		doc  embedserve.Document
		want string
	}{
		{"id", embedserve.Document{ID: "id\xff", Text: "x"},
			`embedserve: document id "id\xff" is not UTF-8 (byte 0xff at byte offset 2)`},
		{"text", embedserve.Document{ID: "t", Text: "ok \x80"},
			`embedserve: document "t": text is not UTF-8 (byte 0x80 at byte offset 3)`},
		{"payload string", embedserve.Document{ID: "p", Text: "x", Payload: map[string]any{"tags": []any{"ok", "bad\xff"}}},
			`embedserve: document "p": payload.tags[1] is not UTF-8 (byte 0xff at byte offset 3)`},
		{"payload key", embedserve.Document{ID: "k", Vector: []float32{1}, Payload: map[string]any{"a": map[string]any{"b\xff": 1}}},
			`embedserve: document "k": payload.a key "b\xff" is not UTF-8 (byte 0xff at byte offset 1)`},
	} {
		_, err := client.Upsert(ctx, "c", []embedserve.Document{{ID: "fine", Text: "ok"}, tc.doc})
		refused("Upsert "+tc.name, err, tc.want)
		for _, err := range client.Ingest(ctx, "c", slices.Values([]embedserve.Document{tc.doc})) {
			refused("Ingest "+tc.name, err, tc.want)
		}
	}
	err = client.UpdatePayload(ctx, "c", []string{"a"}, nil, map[string]any{"note\xfe": "x"})
	refused("UpdatePayload", err, `embedserve: payload key "note\xfe" is not UTF-8 (byte 0xfe at byte offset 4)`)

	// Everything else the client sends: collection names, query texts, ids,
	// filters, aliases, as fields of the request.
	_, err = client.Search(ctx, "c\xff", embedserve.Text("q"))
	refused("Search collection", err, "embedserve: collection is not UTF-8 (byte 0xff at byte offset 1)")
	_, err = client.Search(ctx, "c", embedserve.Text("q\xff"))
	refused("Search text", err, "embedserve: text is not UTF-8 (byte 0xff at byte offset 1)")
	_, err = client.Search(ctx, "c", embedserve.Text("q"), embedserve.WithFilter(embedserve.Must(embedserve.Match("k", "ok"), embedserve.Match("k", "v\xff"))))
	refused("Search filter", err, "embedserve: filter.must[1].match.text is not UTF-8 (byte 0xff at byte offset 1)")
	_, err = client.Recommend(ctx, "c", embedserve.IDs("a", "\xffb"), nil)
	refused("Recommend", err, "embedserve: positive[1].id is not UTF-8 (byte 0xff at byte offset 0)")
	_, err = client.Get(ctx, "c", []string{"a", "b\xff"}, false)
	refused("Get", err, "embedserve: ids[1] is not UTF-8 (byte 0xff at byte offset 1)")
	err = client.UpdateAliases(ctx, map[string]string{"al\xff": "c"}, nil)
	refused("UpdateAliases", err, `embedserve: set key "al\xff" is not UTF-8 (byte 0xff at byte offset 2)`)
	_, err = client.Rerank(ctx, "q", []string{"ok", "d\xff"})
	refused("Rerank", err, "embedserve: documents[1] is not UTF-8 (byte 0xff at byte offset 1)")
	_, err = client.VectorStub().Count(ctx, &pb.CountRequest{Collection: "c", Filter: &pb.Filter{Must: []*pb.Condition{embedserve.HasID("x\xff")}}})
	refused("VectorStub().Count", err, "embedserve: filter.must[0].has_id.ids[0] is not UTF-8 (byte 0xff at byte offset 1)")
	stream, err := client.VectorStub().IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = stream.Send(&pb.IngestStreamRequest{Collection: "c", Documents: []*pb.Document{{Id: "a"}, {Id: "b\xff"}}})
	refused("VectorStub().IngestStream Send", err, "embedserve: documents[1].id is not UTF-8 (byte 0xff at byte offset 1)")

	// Text is sent as it is, a written U+FFFD and characters of 2 to 4 bytes too.
	_, err = client.Search(ctx, "c", embedserve.Text("\uFFFD é ✓ 🚀"), embedserve.WithFilter(embedserve.Must(embedserve.Match("k", "ünï"))))
	if status.Code(err) != codes.Unimplemented { // the fake's answer: it was sent
		t.Errorf("Search with text: %v, want it sent", err)
	}
}

// A batch holding a text that is not UTF-8 ends EmbedStream once the batches
// sent before it are answered, naming the batch and the text.
func TestEmbedStreamRefusesTextsThatAreNotUTF8(t *testing.T) {
	_, client := startFloatStream(t)
	var results []embedserve.StreamResult
	var errs []error
	for result, err := range client.EmbedStream(context.Background(), embedserve.Batches([]string{"a", "b", "c", "d\xffe"}, 2)) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		results = append(results, result)
	}
	want := "embedserve: batch 1: text 1 is not UTF-8 (byte 0xff at byte offset 1)"
	if len(results) != 1 || len(errs) != 1 || status.Code(errs[0]) != codes.InvalidArgument || !strings.Contains(errs[0].Error(), want) {
		t.Fatalf("%d results, errors %v; want 1 result, then InvalidArgument %q", len(results), errs, want)
	}
}
