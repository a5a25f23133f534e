package embedserve

// Export and analysis: Scroll pages through a collection; Cluster groups its
// documents (or a list of texts); FindDuplicates reports near-duplicates.

import (
	"context"
	"iter"

	"google.golang.org/protobuf/proto"

	pb "github.com/embedserve/embedserve/clients/go/embedservev1"
)

// Scroll returns one page of stored documents and the cursor of the next page
// ("" after the last). req.Cursor is "" for the first page. req.OrderBy pages
// in the order of a field with an integer, float or datetime payload index (documents
// without it are left out) instead of id order; a cursor only goes with the
// order_by it was handed out with. Payload numbers come back as float64, or
// with req.ExactPayloads exactly (read from StoredDocument.PayloadJson): an
// integer an int64 holds as int64, past 2**53 too, any other number as float64.
func (c *Client) Scroll(ctx context.Context, req *pb.ScrollRequest) ([]Document, string, error) {
	resp, err := c.vectors.Scroll(ctx, req)
	if err != nil {
		return nil, "", err
	}
	docs, err := storedDocuments(resp.GetDocuments())
	if err != nil {
		return nil, "", err
	}
	return docs, resp.GetNextCursor(), nil
}

// ScrollAll yields every stored document matching req.Filter, in req.OrderBy's
// order when set, one page request at a time, each page asked for as req asks
// (page size, payloads, vectors, exact payloads) from req.Cursor on; it stops
// at the first error, which it yields. req itself is not changed.
func (c *Client) ScrollAll(ctx context.Context, req *pb.ScrollRequest) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		page := &pb.ScrollRequest{}
		if req != nil {
			page = proto.Clone(req).(*pb.ScrollRequest) // every field, those added later too
		}
		for {
			docs, next, err := c.Scroll(ctx, page)
			if err != nil {
				yield(Document{}, err)
				return
			}
			for _, d := range docs {
				if !yield(d, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			page.Cursor = next
		}
	}
}

// Cluster groups a collection's documents (req.Source: collection) or a list
// of texts by k-means (k given, or chosen by silhouette) or HDBSCAN.
func (c *Client) Cluster(ctx context.Context, req *pb.ClusterRequest) (*pb.ClusterResponse, error) {
	return c.vectors.Cluster(ctx, req)
}

// FindDuplicates returns near-duplicate pairs and groups of a collection at or
// above a cosine threshold, and a histogram of best-neighbour scores.
func (c *Client) FindDuplicates(ctx context.Context, req *pb.FindDuplicatesRequest) (*pb.FindDuplicatesResponse, error) {
	return c.vectors.FindDuplicates(ctx, req)
}
