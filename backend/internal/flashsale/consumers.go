package flashsale

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	"flashedge/shared/keyspace"
)

// Consumers come and go with workers (a scale-down, a rolling update, a crash). A consumer is
// removed from the group only by consumer_retire.lua, which refuses while the consumer holds a
// pending entry: XGROUP DELCONSUMER would drop those entries and no one would decide them. A
// stopping worker retires its own consumers after its loops have acknowledged what they hold;
// whatever a dead worker held is claimed by the others (XAUTOCLAIM after ClaimIdle), and then
// RetireIdleConsumers removes the emptied consumer.

// RetireConsumer deletes consumer from group unless it holds pending entries. It reports
// whether the consumer is gone.
func (s *Service) RetireConsumer(ctx context.Context, group, consumer string) (bool, error) {
	n, err := s.lua.consumerRetire.Exec(ctx, s.c, []string{keyspace.AttemptStream()}, []string{group, consumer}).AsInt64()
	if err != nil {
		return false, fmt.Errorf("flashsale: retire consumer %s: %w", consumer, err)
	}
	return n == 1, nil
}

// RetireIdleConsumers retires every consumer of group idle for at least idle that holds no
// pending entry, and returns how many it removed. A live consumer touches the group at every
// blocking read, so a long idle time means a worker that is gone; should a live one be removed
// anyway, its next XREADGROUP creates it again, and nothing it held is lost either way.
func (s *Service) RetireIdleConsumers(ctx context.Context, group string, idle time.Duration) (int, error) {
	stream := keyspace.AttemptStream()
	arr, err := s.c.Do(ctx, s.c.B().XinfoConsumers().Key(stream).Group(group).Build()).ToArray()
	if err != nil {
		return 0, fmt.Errorf("flashsale: XINFO CONSUMERS: %w", err)
	}
	removed := 0
	for _, m := range arr {
		info, err := m.AsMap()
		if err != nil {
			return removed, fmt.Errorf("flashsale: XINFO CONSUMERS reply: %w", err)
		}
		field := func(k string) *rueidis.RedisMessage { m := info[k]; return &m }
		name, _ := field("name").ToString()
		ms, _ := field("idle").AsInt64()
		pending, _ := field("pending").AsInt64()
		if name == "" || pending > 0 || time.Duration(ms)*time.Millisecond < idle {
			continue
		}
		gone, err := s.RetireConsumer(ctx, group, name)
		if err != nil {
			return removed, err
		}
		if gone {
			removed++
		}
	}
	return removed, nil
}

// consumerNames are the names of w's consumer loops.
func (w *Worker) consumerNames() []string {
	names := make([]string, w.o.Concurrency)
	for i := range names {
		names[i] = w.o.Consumer + "-" + strconv.Itoa(i)
	}
	return names
}

// retireOwn runs after the consumer loops have stopped: it removes each of w's consumers that
// holds nothing. One that still holds an entry (a message that could not be decided) stays for
// another worker to claim.
func (w *Worker) retireOwn() {
	ctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
	defer cancel()
	for _, name := range w.consumerNames() {
		gone, err := w.s.RetireConsumer(ctx, w.o.Group, name)
		if err != nil {
			w.log.Warn("flash-sale worker: cannot retire consumer; the others will", "name", name, "err", err)
			continue
		}
		if !gone {
			w.log.Info("flash-sale worker: consumer keeps pending entries for another worker to claim", "name", name)
		}
	}
}

// retireIdle removes the consumers of workers that are gone once the others have claimed their
// entries: idle for four claim periods (a live consumer is never idle longer than one blocking
// read plus one batch).
func (w *Worker) retireIdle() {
	ctx, cancel := context.WithTimeout(context.Background(), w.o.MessageTimeout)
	defer cancel()
	n, err := w.s.RetireIdleConsumers(ctx, w.o.Group, 4*w.o.ClaimIdle)
	if err != nil {
		w.log.Warn("flash-sale worker: retiring idle consumers failed", "err", err)
		w.m.WorkerErrors.Inc()
	} else if n > 0 {
		w.log.Info("flash-sale worker: retired idle consumers", "removed", n)
	}
}
