// Package monitoring holds the files for watching a real flashedge deployment:
// prometheus.yml (a scrape config for every service's /metrics) and grafana-dashboard.json (a
// Grafana dashboard over those metrics). Its test parses both and checks that every PromQL
// expression names only metrics the services export (the contract in shared/metrics).
package monitoring
