package embedserve_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/embedserve/embedserve/clients/go/embedserve"
	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

func TestScrollClusterAndDuplicates(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims))
	// Two groups of vectors along two axes, and one near-copy of b0.
	var docs []embedserve.Document
	for i := range 6 {
		for group, axis := range []int{0, 1} {
			v := make([]float32, dims)
			v[axis] = 1
			v[2+i] = 0.3
			docs = append(docs, embedserve.Document{ID: fmt.Sprintf("%c%d", 'a'+group, i), Vector: v})
		}
	}
	copyOf := make([]float32, dims)
	copyOf[1], copyOf[2], copyOf[10] = 1, 0.3, 0.01
	docs = append(docs, embedserve.Document{ID: "b0-copy", Vector: copyOf})
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	page, next, err := client.Scroll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(5)})
	if err != nil || len(page) != 5 || next == "" {
		t.Fatalf("first page: %d docs, next %q, %v", len(page), next, err)
	}
	seen := map[string]bool{}
	for doc, err := range client.ScrollAll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(4), WithVectors: true}) {
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Vector) != dims {
			t.Fatalf("%s has %d dimensions", doc.ID, len(doc.Vector))
		}
		seen[doc.ID] = true
	}
	if len(seen) != len(docs) {
		t.Fatalf("ScrollAll saw %d of %d documents", len(seen), len(docs))
	}

	clusters, err := client.Cluster(ctx, &pb.ClusterRequest{Source: &pb.ClusterRequest_Collection{Collection: name}, K: proto.Uint32(2)})
	if err != nil {
		t.Fatal(err)
	}
	label := map[string]int32{}
	for i, id := range clusters.GetIds() {
		label[id] = clusters.GetLabels()[i]
	}
	if clusters.GetK() != 2 || label["a0"] == label["b0"] || label["a0"] != label["a5"] || label["b0"] != label["b0-copy"] {
		t.Fatalf("labels %v", label)
	}

	dups, err := client.FindDuplicates(ctx, &pb.FindDuplicatesRequest{Collection: name, Threshold: proto.Float32(0.99)})
	if err != nil {
		t.Fatal(err)
	}
	if len(dups.GetPairs()) != 1 || dups.GetPairs()[0].GetA() != "b0" || dups.GetPairs()[0].GetB() != "b0-copy" {
		t.Fatalf("pairs %v", dups.GetPairs())
	}
	_, err = client.FindDuplicates(ctx, &pb.FindDuplicatesRequest{Collection: name, Threshold: proto.Float32(2)})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("threshold 2: %v, want InvalidArgument", err)
	}
}

func TestScrollOrderBy(t *testing.T) {
	client := dial(t)
	ctx := context.Background()
	name := newCollection(t, client, embedserve.WithVectorSize(dims),
		embedserve.WithPayloadIndex("year", pb.PayloadIndexKind_PAYLOAD_INDEX_KIND_INTEGER))
	years := map[string]int{"d0": 2019, "d1": 2021, "d2": 2020, "d3": 2021, "d4": 2018, "d5": 2020, "d6": 2021, "d7": 2017}
	var docs []embedserve.Document
	for i := range 9 {
		id := fmt.Sprintf("d%d", i)
		v := make([]float32, dims)
		v[i] = 1
		doc := embedserve.Document{ID: id, Vector: v}
		if year, ok := years[id]; ok {
			doc.Payload = map[string]any{"year": year}
		}
		docs = append(docs, doc)
	}
	if _, err := client.Upsert(ctx, name, docs); err != nil {
		t.Fatal(err)
	}

	// Descending, two to a page: every dated document once, years non-increasing; d8 has none.
	order := &pb.ScrollOrder{Key: "year", Descending: true}
	seen := map[string]int{}
	last := float64(1 << 30)
	for doc, err := range client.ScrollAll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(2), OrderBy: order}) {
		if err != nil {
			t.Fatal(err)
		}
		year, ok := doc.Payload["year"].(float64)
		if !ok || year > last {
			t.Fatalf("%s (year %v) after year %v", doc.ID, doc.Payload["year"], last)
		}
		last = year
		seen[doc.ID]++
	}
	if len(seen) != len(years) {
		t.Fatalf("saw %v, want each of %v", seen, years)
	}
	for id, n := range seen {
		if _, dated := years[id]; !dated || n != 1 {
			t.Fatalf("%s seen %d times (dated: %v)", id, n, dated)
		}
	}

	// A cursor belongs to the order it was handed out with.
	_, next, err := client.Scroll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(2), OrderBy: &pb.ScrollOrder{Key: "year"}})
	if err != nil || next == "" {
		t.Fatalf("ascending first page: next %q, %v", next, err)
	}
	_, _, err = client.Scroll(ctx, &pb.ScrollRequest{Collection: name, Limit: proto.Uint32(2), OrderBy: order, Cursor: next})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "another order_by") {
		t.Fatalf("ascending cursor with descending order: %v, want InvalidArgument about another order_by", err)
	}
}
