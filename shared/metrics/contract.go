package metrics

// Spec describes one metric family of the contract in the package documentation.
type Spec struct {
	// Name is the family name; for a histogram, the series add _bucket, _sum and _count.
	Name string
	// Kind is "counter", "gauge" or "histogram".
	Kind string
	// Labels are the label names, in order.
	Labels []string
}

// Services are the flashedge services that expose /metrics, in the order of the ports.
func Services() []string { return []string{"edge", "catalog", "cart", "order", "worker"} }

// Contract returns the metric families the flashedge services register (see the package
// documentation for their meaning). It returns a new slice on every call.
func Contract() []Spec {
	var s []Spec
	for _, svc := range Services() {
		s = append(s,
			Spec{"flashedge_" + svc + "_requests_total", "counter", []string{"route", "code"}},
			Spec{"flashedge_" + svc + "_request_duration_seconds", "histogram", []string{"route"}},
		)
	}
	return append(s,
		Spec{"flashedge_edge_cache_hits_total", "counter", []string{"layer"}},
		Spec{"flashedge_edge_cache_misses_total", "counter", []string{"layer"}},
		Spec{"flashedge_edge_invalidations_total", "counter", nil},
		Spec{"flashedge_edge_breaker_state", "gauge", []string{"backend", "addr"}},
		Spec{"flashedge_edge_breaker_transitions_total", "counter", []string{"backend", "to"}},
		Spec{"flashedge_edge_backend_healthy", "gauge", []string{"backend", "addr"}},
		Spec{"flashedge_edge_rejections_total", "counter", []string{"reason"}},
		Spec{"flashedge_edge_shed_total", "counter", []string{"backend"}},
		Spec{"flashedge_edge_queue_expired_total", "counter", []string{"backend"}},
		Spec{"flashedge_edge_batches_total", "counter", []string{"backend"}},
		Spec{"flashedge_edge_batched_requests_total", "counter", []string{"backend"}},
		Spec{"flashedge_edge_inflight_limit", "gauge", []string{"backend"}},
		Spec{"flashedge_edge_inflight", "gauge", []string{"backend"}},
		Spec{"flashedge_edge_queued", "gauge", []string{"backend"}},
		Spec{"flashedge_order_admission_total", "counter", []string{"decision"}},
		Spec{"flashedge_order_stream_backlog", "gauge", nil},
		Spec{"flashedge_order_stream_pending", "gauge", nil},
		Spec{"flashedge_worker_processed_total", "counter", []string{"result"}},
		Spec{"flashedge_worker_errors_total", "counter", nil},
		Spec{"flashedge_worker_consumer_lag", "gauge", nil},
		Spec{"flashedge_sale_stock", "gauge", []string{"sale", "shard"}},
		Spec{"flashedge_sale_queued", "gauge", []string{"sale"}},
		Spec{"flashedge_sale_events_total", "counter", []string{"sale", "event"}},
		Spec{"flashedge_sale_tokens_total", "counter", []string{"event"}},
	)
}

// SeriesNames returns every series name the contract can produce: counter and gauge names as
// they are, histograms with their _bucket, _sum and _count suffixes.
func SeriesNames() []string {
	var out []string
	for _, s := range Contract() {
		if s.Kind == "histogram" {
			out = append(out, s.Name+"_bucket", s.Name+"_sum", s.Name+"_count")
			continue
		}
		out = append(out, s.Name)
	}
	return out
}

// BreakerValue maps a breaker state name ("closed", "half-open", "open", as gobreaker and
// upstream.ReplicaState spell them) to the value of flashedge_edge_breaker_state: 0, 1, 2.
// Unknown names map to -1.
func BreakerValue(state string) float64 {
	switch state {
	case "closed":
		return 0
	case "half-open":
		return 1
	case "open":
		return 2
	}
	return -1
}
