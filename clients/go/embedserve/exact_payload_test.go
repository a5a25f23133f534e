package embedserve_test

// Exact payloads (GetRequest and ScrollRequest exact_payloads): read from
// StoredDocument.payload_json, integers as int64 (past 2**53 too), other
// numbers as float64. Against a fake VectorService (no model), then a live
// round trip of 9007199254740993 written as payload_json.

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// fakeStored answers Get with documents, and Scroll with one page per
// document (the cursor is the next document's index), each payload as the
// server does: payload_json when the request asks for exact payloads, else
// the Struct. It records the requests.
type fakeStored struct {
	pb.UnimplementedVectorServiceServer
	payloads []string // JSON text, or a Struct's JSON when not exact
	mu       sync.Mutex
	gets     []*pb.GetRequest
	scrolls  []*pb.ScrollRequest
}

func (f *fakeStored) document(i int, exact bool) *pb.StoredDocument {
	doc := &pb.StoredDocument{Id: string(rune('a' + i))}
	if exact {
		doc.PayloadJson = f.payloads[i]
	} else {
		doc.Payload = &structpb.Struct{}
		if err := doc.Payload.UnmarshalJSON([]byte(f.payloads[i])); err != nil {
			panic(err)
		}
	}
	return doc
}

func (f *fakeStored) Get(_ context.Context, request *pb.GetRequest) (*pb.GetResponse, error) {
	f.mu.Lock()
	f.gets = append(f.gets, request)
	f.mu.Unlock()
	response := &pb.GetResponse{}
	for i := range f.payloads {
		response.Documents = append(response.Documents, f.document(i, request.GetExactPayloads()))
	}
	return response, nil
}

func (f *fakeStored) Scroll(_ context.Context, request *pb.ScrollRequest) (*pb.ScrollResponse, error) {
	f.mu.Lock()
	f.scrolls = append(f.scrolls, request)
	f.mu.Unlock()
	i := 0
	if request.GetCursor() != "" {
		i = int(request.GetCursor()[0] - '0')
	}
	response := &pb.ScrollResponse{Documents: []*pb.StoredDocument{f.document(i, request.GetExactPayloads())}}
	if i+1 < len(f.payloads) {
		response.NextCursor = string(rune('0' + i + 1))
	}
	return response, nil
}

const everyKind = `{"n":9007199254740993,"min":-9223372036854775808,"max":9223372036854775807,` +
	`"past":9223372036854775808,"half":1.5,"huge":1e+300,"small":-2.5e-7,"zero":0,"s":"9007199254740993",` +
	`"t":true,"none":null,"list":[1,2.5,{"id":1152921504606846977}],"obj":{"deep":[[-3]]},"u":"\u00e9\ud83d\ude00"}`

var everyKindExact = map[string]any{
	"n": int64(9007199254740993), "min": int64(-9223372036854775808), "max": int64(9223372036854775807),
	"past": float64(9223372036854775808), "half": 1.5, "huge": 1e300, "small": -2.5e-7, "zero": int64(0),
	"s": "9007199254740993", "t": true, "none": nil,
	"list": []any{int64(1), 2.5, map[string]any{"id": int64(1152921504606846977)}},
	"obj":  map[string]any{"deep": []any{[]any{int64(-3)}}}, "u": "é😀",
}

func TestExactPayloadsDecoded(t *testing.T) {
	fake := &fakeStored{payloads: []string{everyKind, `{}`, `{"k":7}`}}
	client := serveFake(t, fake)
	ctx := context.Background()

	stored, err := client.Get(ctx, "c", []string{"a", "b", "c"}, false, embedserve.WithExactPayloads())
	if err != nil {
		t.Fatal(err)
	}
	if !fake.gets[0].GetExactPayloads() {
		t.Fatal("Get with WithExactPayloads did not ask for exact payloads")
	}
	if len(stored) != 3 || !reflect.DeepEqual(stored[0].Payload, everyKindExact) {
		t.Fatalf("exact payload:\n%#v\nwant\n%#v", stored[0].Payload, everyKindExact)
	}
	if stored[1].Payload == nil || len(stored[1].Payload) != 0 || stored[2].Payload["k"] != int64(7) {
		t.Fatalf("exact payloads {} and {\"k\":7}: %#v, %#v", stored[1].Payload, stored[2].Payload)
	}

	// Without the option: the Struct, every number a double (2**53+1 changed).
	stored, err = client.Get(ctx, "c", []string{"a"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if fake.gets[1].GetExactPayloads() || stored[0].Payload["n"] != float64(9007199254740992) || stored[2].Payload["k"] != float64(7) {
		t.Fatalf("Struct payload: n %#v, k %#v (asked exact: %v)", stored[0].Payload["n"], stored[2].Payload["k"], fake.gets[1].GetExactPayloads())
	}

	page, next, err := client.Scroll(ctx, &pb.ScrollRequest{Collection: "c", ExactPayloads: true})
	if err != nil || next != "1" || len(page) != 1 || !reflect.DeepEqual(page[0].Payload, everyKindExact) {
		t.Fatalf("Scroll with ExactPayloads: next %q, %v\n%#v", next, err, page)
	}

	// ScrollAll asks for every page as the request does, and leaves it unchanged.
	fake.scrolls = nil
	request := &pb.ScrollRequest{Collection: "c", Limit: proto.Uint32(1), WithVectors: true, ExactPayloads: true,
		OrderBy: &pb.ScrollOrder{Key: "k"}, Filter: embedserve.Must(embedserve.Match("s", "x"))}
	want := proto.Clone(request).(*pb.ScrollRequest)
	var payloads []map[string]any
	for doc, err := range client.ScrollAll(ctx, request) {
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, doc.Payload)
	}
	if len(payloads) != 3 || !reflect.DeepEqual(payloads[0], everyKindExact) || payloads[2]["k"] != int64(7) {
		t.Fatalf("ScrollAll payloads %#v", payloads)
	}
	for i, page := range fake.scrolls {
		want.Cursor = []string{"", "1", "2"}[i]
		if !proto.Equal(page, want) {
			t.Fatalf("page %d asked %v, want %v", i, page, want)
		}
	}
	if len(fake.scrolls) != 3 || request.GetCursor() != "" {
		t.Fatalf("%d page requests; the caller's cursor is now %q", len(fake.scrolls), request.GetCursor())
	}
}

func TestExactPayloadsNotJSONObject(t *testing.T) {
	for _, text := range []string{`[1]`, `null`, `"x"`, `{"a":1} {}`, `{"a":1}]`, `{"a":`, `{"a":1e999}`} {
		fake := &fakeStored{payloads: []string{text}}
		client := serveFake(t, fake)
		_, err := client.Get(context.Background(), "c", []string{"a"}, false, embedserve.WithExactPayloads())
		if status.Code(err) != codes.Internal || !strings.HasPrefix(status.Convert(err).Message(), `embedserve: document "a": payload_json: `) {
			t.Fatalf("payload_json %s: %v, want Internal naming the document", text, err)
		}
		_, _, err = client.Scroll(context.Background(), &pb.ScrollRequest{Collection: "c", ExactPayloads: true})
		if status.Code(err) != codes.Internal {
			t.Fatalf("Scroll of payload_json %s: %v, want Internal", text, err)
		}
	}
}

// TestExactPayloadsLive writes 2**53+1 as payload_json (as the Python client
// sends it; this client refuses it in a Payload) through the generated stub,
// and reads it back exactly with exact payloads, changed without.
func TestExactPayloadsLive(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	vector := make([]float32, dims)
	vector[0] = 1
	documents := []*pb.Document{
		{Id: "big", Content: &pb.Document_Vector{Vector: &pb.Vector{Values: vector}},
			PayloadJson: `{"n":9007199254740993,"ids":[9223372036854775807,-9007199254740993],"f":0.5,"whole":10.0,"s":"x"}`},
		{Id: "small", Content: &pb.Document_Vector{Vector: &pb.Vector{Values: vector}}, PayloadJson: `{"n":3}`},
	}
	if _, err := client.VectorStub().Upsert(ctx, &pb.UpsertRequest{Collection: name, Documents: documents}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": int64(9007199254740993), "ids": []any{int64(9223372036854775807), int64(-9007199254740993)},
		"f": 0.5, "whole": int64(10), "s": "x"}

	stored, err := client.Get(ctx, name, []string{"big"}, false, embedserve.WithExactPayloads())
	if err != nil || len(stored) != 1 || !reflect.DeepEqual(stored[0].Payload, want) {
		t.Fatalf("Get with WithExactPayloads: %v\n%#v\nwant %#v", err, stored, want)
	}
	stored, err = client.Get(ctx, name, []string{"big"}, false)
	if err != nil || len(stored) != 1 || stored[0].Payload["n"] != float64(9007199254740992) {
		t.Fatalf("Get without exact payloads: %v, %#v (a Struct's double)", err, stored)
	}

	page, _, err := client.Scroll(ctx, &pb.ScrollRequest{Collection: name, ExactPayloads: true})
	if err != nil || len(page) != 2 {
		t.Fatalf("Scroll: %v, %#v", err, page)
	}
	byID := map[string]map[string]any{}
	for doc, err := range client.ScrollAll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(1), ExactPayloads: true}) {
		if err != nil {
			t.Fatal(err)
		}
		byID[doc.ID] = doc.Payload
	}
	if len(byID) != 2 || !reflect.DeepEqual(byID["big"], want) || byID["small"]["n"] != int64(3) {
		t.Fatalf("ScrollAll with ExactPayloads, a page per document: %#v", byID)
	}
	for _, doc := range page {
		if !reflect.DeepEqual(doc.Payload, byID[doc.ID]) {
			t.Fatalf("Scroll's %s: %#v, ScrollAll's %#v", doc.ID, doc.Payload, byID[doc.ID])
		}
	}
}
