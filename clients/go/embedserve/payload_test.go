package embedserve_test

// Documents and payloads the client refuses before sending, as the Python
// client does: against the fake VectorService (no model), where a call that
// passes the checks ends with Unimplemented.

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// nested is n objects, each holding the next under "a", around a string.
func nested(n int) any {
	var v any = "leaf"
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

const pastDoubles = " is past 2**53, and a protobuf Struct carries numbers as doubles, which would change it to "

func TestDocumentsSentOnlyAsTheyAre(t *testing.T) {
	client := serveFake(t, &fakeIngest{received: make(chan *pb.IngestStreamRequest, 1)})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		doc  embedserve.Document
		want string // the InvalidArgument message; "" when the document is sent
	}{
		{"text and vector", embedserve.Document{ID: "both", Text: "x", Vector: []float32{1, 2}},
			`embedserve: document "both" takes a text or a vector, not both`},
		{"int64 past 2**53", embedserve.Document{ID: "big", Text: "x", Payload: map[string]any{"n": int64(1)<<53 + 1}},
			`embedserve: document "big": payload 'n': 9007199254740993` + pastDoubles + "9007199254740992; send it as a string (or over HTTP, whose JSON keeps it)"},
		{"uint64 2**63+1", embedserve.Document{ID: "u", Text: "x", Payload: map[string]any{"n": uint64(1)<<63 + 1}},
			`embedserve: document "u": payload 'n': 9223372036854775809` + pastDoubles + "9223372036854775808;"},
		{"largest int", embedserve.Document{ID: "max", Text: "x", Payload: map[string]any{"n": int(^uint(0) >> 1)}},
			`payload 'n': 9223372036854775807` + pastDoubles + "9223372036854775808;"},
		{"nested in a list", embedserve.Document{ID: "l", Text: "x", Payload: map[string]any{"ids": []any{1, map[string]any{"id": int64(1)<<60 + 1}}}},
			`payload 'ids[1].id': 1152921504606846977` + pastDoubles + "1152921504606846976;"},
		{"json.Number", embedserve.Document{ID: "j", Text: "x", Payload: map[string]any{"n": json.Number("9007199254740993")}},
			`payload 'n': 9007199254740993` + pastDoubles + "9007199254740992;"},
		{"33 deep", embedserve.Document{ID: "d33", Text: "x", Payload: map[string]any{"p": nested(32)}},
			`embedserve: document "d33": payload.p` + strings.Repeat(".a", 31) + ": objects and arrays nest at most 32 deep"},
		{"33 deep in lists", embedserve.Document{ID: "l33", Text: "x", Payload: map[string]any{"l": []any{[]any{nested(30)}}}},
			`payload.l[0][0]` + strings.Repeat(".a", 29) + ": objects and arrays nest at most 32 deep"},
		{"32 deep", embedserve.Document{ID: "d32", Text: "x", Payload: map[string]any{"p": nested(31)}}, ""},
		{"2**53 and an even 2**53+2", embedserve.Document{ID: "even", Text: "x", Payload: map[string]any{"a": int64(1) << 53, "b": int64(1)<<53 + 2, "c": uint64(1) << 63, "f": 1e300}}, ""},
		{"vector only", embedserve.Document{ID: "v", Vector: []float32{1, 2}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Upsert(ctx, "c", []embedserve.Document{tc.doc})
			if tc.want == "" {
				if status.Code(err) != codes.Unimplemented { // the fake's answer: it was sent
					t.Fatalf("Upsert: %v, want it sent", err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
				t.Fatalf("Upsert: %v\nwant InvalidArgument with %q", err, tc.want)
			}
			for _, err := range client.Ingest(ctx, "c", slices.Values([]embedserve.Document{tc.doc})) {
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
					t.Fatalf("Ingest: %v\nwant InvalidArgument with %q", err, tc.want)
				}
			}
		})
	}
	err := client.UpdatePayload(ctx, "c", []string{"a"}, nil, map[string]any{"n": int64(1)<<53 + 1})
	if want := "embedserve: payload 'n': 9007199254740993" + pastDoubles; status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), want) {
		t.Fatalf("UpdatePayload: %v, want InvalidArgument with %q", err, want)
	}
	err = client.UpdatePayload(ctx, "c", []string{"a"}, nil, map[string]any{"p": nested(32)})
	if status.Code(err) != codes.InvalidArgument || !strings.HasSuffix(status.Convert(err).Message(), "nest at most 32 deep") {
		t.Fatalf("UpdatePayload 33 deep: %v, want InvalidArgument", err)
	}
}
