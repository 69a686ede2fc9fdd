// Package metrics gives every flashedge service its Prometheus metrics: one Registry per
// service (created in run, no package state) built on github.com/VictoriaMetrics/metrics, an
// HTTP middleware counting requests by route pattern and status and timing them, /metrics in
// the Prometheus text format with process and Go runtime metrics, and /metrics.json with the
// seed's summary (total, success, failed, latency percentiles over the last minute).
//
// # Wiring
//
//	reg := metrics.New("order")
//	r := router.New()
//	reg.Register(r)                           // GET /metrics, GET /metrics.json
//	r.POST("/x/{id}", metrics.Tag("/x/{id}", h)) // or r.SaveMatchedRoutePath = true
//	handler := reg.Instrument(r.Handler, nil)  // outermost middleware
//
// Domain metrics are registered once at start-up and the returned pointers kept:
//
//	hits := reg.Counter("flashedge_edge_cache_hits_total", "layer", "body")
//	hits.Inc()
//	reg.GaugeFunc("flashedge_order_stream_backlog", func() float64 { return float64(backlog.Load()) })
//	reg.GaugeFamily("flashedge_sale_stock", []string{"sale", "shard"}, func(emit metrics.Emit) { ... })
//
// # Naming
//
// Names follow the Prometheus conventions: flashedge_<service>_<what>; snake_case; base units
// (seconds, bytes); counters end in _total (Counter refuses other names); durations are
// histograms named _seconds; a gauge says what it holds now (_backlog, _state, _healthy). Label
// values must come from a small, known set: route PATTERNS, never raw paths; a sale id is fine
// (a handful live at once), a user id never.
//
// # The contract
//
// These are the names the services register and the Grafana dashboard and Prometheus config in
// deploy/monitoring query; Contract returns the same list and a test keeps both in step.
//
// Every service (<svc> is edge, catalog, cart, order, worker), by Registry.Instrument:
//
//	flashedge_<svc>_requests_total{route,code}            counter
//	flashedge_<svc>_request_duration_seconds{route}       histogram (le buckets: DurationBuckets)
//	process_*, go_*                                       process and Go runtime, on every /metrics
//
// Edge:
//
//	flashedge_edge_cache_hits_total{layer}                counter; layer = body | rueidis | store
//	flashedge_edge_cache_misses_total{layer}              counter
//	flashedge_edge_invalidations_total                    counter; invalidation messages from the store
//	flashedge_edge_breaker_state{backend,addr}            gauge; 0 closed, 1 half-open, 2 open (BreakerValue)
//	flashedge_edge_breaker_transitions_total{backend,to}  counter; to = closed | half-open | open
//	flashedge_edge_backend_healthy{backend,addr}          gauge; 1 when the last probe passed
//	flashedge_edge_rejections_total{reason}               counter; reason = rate_limit_ip |
//	                                                      rate_limit_user | shop_limit_ip |
//	                                                      shop_limit_user | blacklist | sold_out |
//	                                                      not_started | ended
//	flashedge_edge_shed_total{backend}                    counter; requests refused with 503 overloaded
//	                                                      (the backend's in-flight bound and its queue)
//	flashedge_edge_queue_expired_total{backend}           counter; of those, the ones refused after
//	                                                      waiting in the queue, not at arrival
//	flashedge_edge_batches_total{backend}                 counter; batches of requests sent to the
//	                                                      backend (attempts to the order service)
//	flashedge_edge_batched_requests_total{backend}        counter; the requests they carried (their
//	                                                      ratio is the mean batch)
//	flashedge_edge_inflight_limit{backend}                gauge; that bound now (adaptive: it follows
//	                                                      the backend's latency)
//	flashedge_edge_inflight{backend}                      gauge; calls to the backend in flight now
//	flashedge_edge_queued{backend}                        gauge; calls waiting for a slot under that
//	                                                      bound now (-backend-queue)
//
// Order service:
//
//	flashedge_order_admission_total{decision}             counter; decision = admitted | sold_out |
//	                                                      busy | limit | bad_challenge | not_started |
//	                                                      ended
//	flashedge_order_stream_backlog                        gauge; entries not yet delivered to the group
//	flashedge_order_stream_pending                        gauge; delivered but not acknowledged
//
// Worker:
//
//	flashedge_worker_processed_total{result}              counter; result = won | lost | sold_out | duplicate
//	flashedge_worker_errors_total                         counter
//	flashedge_worker_consumer_lag                         gauge; entries the group has yet to read
//
// Per sale, read from the store at scrape time by whichever service owns the ledger (the order
// service is the natural one); query them with max by (sale, ...) when several replicas export:
//
//	flashedge_sale_stock{sale,shard}                      gauge; units left in that stock shard
//	flashedge_sale_queued{sale}                           gauge; admitted attempts not yet decided
//	flashedge_sale_events_total{sale,event}               counter; event = admitted | won | lost |
//	                                                      sold_out | ordered | expired | returned
//	flashedge_sale_tokens_total{event}                    counter; event = issued | consumed | expired
//
// flashedge_sale_queued and flashedge_sale_events_total were added to the first draft of this
// list so that a Grafana panel can show admitted, queued, won, ordered and expired per sale.
//
// # Cost
//
// Instrument makes no allocation per request once a (route, code) pair has been seen; see
// BenchmarkInstrument for the overhead on an in-memory request.
package metrics
