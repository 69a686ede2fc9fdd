package upstream

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"flashedge/shared/httpapi"
)

// Batching (Options.BatchPath): ForwardBatched puts the request in a queue that a few senders
// empty, each taking every request waiting (up to BatchMax requests and BatchBytes bytes; a
// request that would not fit goes in the next batch, and one larger than BatchBytes alone goes
// as Forward sends it) into one POST to the replica's httpapi.BatchPath, which runs them at once
// and answers all in one response. Under load the requests that arrive while a batch is out go together in the next
// one; alone, a request goes at once in a batch of one. Each request still takes its own slot
// of the in-flight limit before it is queued (a refusal is the same, and as cheap, as
// Forward's), and the slots are given back when its batch is answered.
//
// A batch is sent again after a failure only when every request in it may be (Repeatable), or
// when it never left. A replica that does not know the batch route (it answers 404 or 405: an
// older build during a rolling update) gets the requests one by one.

// Batching defaults (see Options).
const (
	DefaultBatchMax     = 64
	DefaultBatchBytes   = 48 << 10
	DefaultBatchSenders = 2
)

// errNoBatch marks a batch the replica did not take as one: its requests go one by one.
var errNoBatch = errors.New("upstream: the replica does not serve batches")

type batcher struct {
	p        *Pool
	path     string
	max      int
	maxBytes int
	queue    chan *batchItem

	mu      sync.RWMutex
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup

	items   sync.Pool
	readers sync.Pool

	batches, sent atomic.Uint64 // batches sent, and the requests they carried
}

// batchItem is one request on its way: its bytes out, its answer's bytes back.
type batchItem struct {
	req, resp  []byte
	repeatable bool
	err        error
	done       chan struct{}
}

// byteReader is a pooled reader of one answer's bytes.
type byteReader struct {
	r  bytes.Reader
	br *bufio.Reader
}

func newBatcher(p *Pool, o *Options) *batcher {
	b := &batcher{p: p, path: o.BatchPath, max: o.BatchMax, maxBytes: o.BatchBytes,
		queue: make(chan *batchItem, 4*o.BatchMax*o.BatchSenders), stop: make(chan struct{})}
	b.items.New = func() any { return &batchItem{done: make(chan struct{}, 1)} }
	b.readers.New = func() any {
		r := &byteReader{}
		r.br = bufio.NewReaderSize(&r.r, 4096)
		return r
	}
	b.wg.Add(o.BatchSenders)
	for range o.BatchSenders {
		go b.send()
	}
	return b
}

// ForwardBatched is Forward through a batch (see Options.BatchPath): the same answers, the same
// refusals, the request's bytes going to the replica together with others'. Without BatchPath it
// is Forward.
func (p *Pool) ForwardBatched(rctx *fasthttp.RequestCtx) {
	b := p.batch
	if b == nil {
		p.Forward(rctx)
		return
	}
	ctx := context.Background()
	if err := p.admit(ctx); err != nil {
		p.writeRefusal(ctx, rctx, err)
		return
	}
	it := b.items.Get().(*batchItem)
	defer b.items.Put(it)
	if err := it.fill(&rctx.Request); err != nil {
		p.limit.giveBack()
		p.writeRefusal(ctx, rctx, err)
		return
	}
	if len(it.req)+4 > b.maxBytes {
		// Too large to share a batch (the batch's body must stay under the replicas' limit,
		// and one large request must not make the others' batch too large): it goes alone,
		// as Forward would send it, and gets the answer it would get alone.
		p.forwardAdmitted(ctx, rctx)
		return
	}
	if !b.enqueue(it) {
		p.limit.giveBack()
		p.writeRefusal(ctx, rctx, ErrClosed)
		return
	}
	<-it.done
	switch {
	case errors.Is(it.err, errNoBatch):
		p.ForwardContext(ctx, rctx)
		return
	case it.err != nil:
		p.writeRefusal(ctx, rctx, it.err)
		return
	}
	r := b.readers.Get().(*byteReader)
	r.r.Reset(it.resp)
	r.br.Reset(&r.r)
	resp := fasthttp.AcquireResponse()
	if err := resp.Read(r.br); err != nil {
		p.writeRefusal(ctx, rctx, err)
	} else {
		copyResponse(&rctx.Response, resp)
	}
	fasthttp.ReleaseResponse(resp)
	b.readers.Put(r)
}

// fill writes what goes to the replica (copyRequest's selection) as HTTP/1.1 bytes.
func (it *batchItem) fill(src *fasthttp.Request) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	copyRequest(req, src)
	req.URI().SetHost("batch") // a request needs a Host; the replica's own routes ignore it
	w := itemWriter{it}
	it.req, it.resp, it.err = it.req[:0], it.resp[:0], nil
	it.repeatable = Repeatable(req)
	_, err := req.WriteTo(w)
	return err
}

type itemWriter struct{ it *batchItem }

func (w itemWriter) Write(p []byte) (int, error) {
	w.it.req = append(w.it.req, p...)
	return len(p), nil
}

// enqueue hands it to the senders; false after Close.
func (b *batcher) enqueue(it *batchItem) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stopped {
		return false
	}
	b.queue <- it
	return true
}

// close stops taking requests and lets the senders send what is queued, then waits for them.
func (b *batcher) close() {
	b.mu.Lock()
	b.stopped = true
	b.mu.Unlock()
	close(b.stop)
	b.wg.Wait()
}

// send is one sender: it takes every request waiting into one batch, sends it, and again; after
// close it sends what is left in the queue and returns.
func (b *batcher) send() {
	defer b.wg.Done()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	items := make([]*batchItem, 0, b.max)
	var body []byte
	// carry is a request taken from the queue that did not fit in the last batch: it opens the
	// next one.
	var carry *batchItem
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.queue:
			case <-b.stop:
				select {
				case first = <-b.queue:
				default:
					return
				}
			}
		}
		items = append(items[:0], first)
		size := 4 + len(first.req)
	more:
		for len(items) < b.max {
			select {
			case it := <-b.queue:
				if size+4+len(it.req) > b.maxBytes {
					carry = it
					break more
				}
				items = append(items, it)
				size += 4 + len(it.req)
			default:
				break more
			}
		}
		body = b.do(items, req, resp, body[:0])
	}
}

// do sends items as one batch, its body built in buf, and hands every item its answer or the
// batch's error. It returns buf for the next batch.
func (b *batcher) do(items []*batchItem, req *fasthttp.Request, resp *fasthttp.Response, buf []byte) []byte {
	req.Reset()
	resp.Reset()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(b.path)
	req.Header.SetContentType(httpapi.BatchContentType)
	repeatable := true
	for _, it := range items {
		buf = httpapi.AppendFrame(buf, it.req)
		repeatable = repeatable && it.repeatable
	}
	req.SetBodyRaw(buf)
	b.batches.Add(1)
	b.sent.Add(uint64(len(items)))
	err := b.p.doHolding(context.Background(), req, resp, len(items), repeatable)
	if err == nil {
		switch code := resp.StatusCode(); {
		case code == fasthttp.StatusNotFound || code == fasthttp.StatusMethodNotAllowed:
			err = errNoBatch
		case code != fasthttp.StatusOK || !bytes.Equal(resp.Header.ContentType(), []byte(httpapi.BatchContentType)):
			// The replica answered the batch as a whole (a 503 while it shuts down, a 5xx):
			// every request gets that answer, as each would have alone.
			whole := resp.Header.AppendBytes(nil)
			whole = append(whole, resp.Body()...)
			for _, it := range items {
				it.resp = append(it.resp[:0], whole...)
				it.done <- struct{}{}
			}
			return buf
		}
	}
	rest := resp.Body()
	for _, it := range items {
		if err != nil {
			it.err = err
			it.done <- struct{}{}
			continue
		}
		msg, r, ok := httpapi.NextFrame(rest)
		if !ok {
			err = errors.New("upstream " + b.p.name + ": the batch's answer has fewer answers than requests")
			it.err = err
		} else {
			it.resp = append(it.resp[:0], msg...)
			rest = r
		}
		it.done <- struct{}{}
	}
	return buf
}

// Batched returns how many batches ForwardBatched sent since New, and how many requests they
// carried; on is false without Options.BatchPath.
func (p *Pool) Batched() (batches, requests uint64, on bool) {
	if p.batch == nil {
		return 0, 0, false
	}
	return p.batch.batches.Load(), p.batch.sent.Load(), true
}
