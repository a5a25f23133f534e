package dev.embedserve.client;

import dev.embedserve.client.EmbedserveClient.ScrollPage;
import dev.embedserve.client.EmbedserveClient.Stored;
import dev.embedserve.v1.ScrollRequest;
import java.util.Collections;
import java.util.Iterator;
import java.util.NoSuchElementException;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.function.Function;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Every document a {@link ScrollRequest} matches, following the server's cursor: the next page is
 * asked for only when the caller has read the current one, so memory holds one page.
 */
final class ScrollCursor implements Iterator<Stored> {
  private final Function<ScrollRequest, ScrollPage> fetch;
  private ScrollRequest nextPage; // null once the last page has been fetched
  private Iterator<Stored> page = Collections.emptyIterator();

  private ScrollCursor(Function<ScrollRequest, ScrollPage> fetch, ScrollRequest first) {
    this.fetch = fetch;
    this.nextPage = first;
  }

  /** A lazy, sequential stream; a failed page request throws from the stream's operation. */
  static Stream<Stored> stream(Function<ScrollRequest, ScrollPage> fetch, ScrollRequest first) {
    Iterator<Stored> cursor = new ScrollCursor(fetch, first);
    return StreamSupport.stream(
        Spliterators.spliteratorUnknownSize(cursor, Spliterator.ORDERED | Spliterator.NONNULL),
        false);
  }

  @Override
  public boolean hasNext() {
    // A loop, not an if: a page may come back empty and still name a next one.
    while (!page.hasNext() && nextPage != null) {
      ScrollPage fetched = fetch.apply(nextPage);
      nextPage =
          fetched.isLast() ? null : nextPage.toBuilder().setCursor(fetched.nextCursor()).build();
      page = fetched.documents().iterator();
    }
    return page.hasNext();
  }

  @Override
  public Stored next() {
    if (!hasNext()) {
      throw new NoSuchElementException("no more documents");
    }
    return page.next();
  }
}
