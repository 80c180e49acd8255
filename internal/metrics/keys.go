package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgseal/pgseal/keystore"
)

// keyCollector describes the key sets of the keystore in force. Ages are
// computed at scrape time, so an alert on them needs no other exporter.
type keyCollector struct {
	now  func() time.Time
	sets atomic.Pointer[[]keystore.KeySetInfo]

	age      *prometheus.Desc
	primary  *prometheus.Desc
	versions *prometheus.Desc
	loaded   *prometheus.Desc
}

func newKeyCollector(now func() time.Time) *keyCollector {
	return &keyCollector{
		now:      now,
		age:      prometheus.NewDesc("pgseal_key_primary_age_seconds", "Age of each key set's primary version: alert when a key is overdue for rotation.", []string{"key_set"}, nil),
		primary:  prometheus.NewDesc("pgseal_key_primary_version", "Version number of each key set's primary version.", []string{"key_set"}, nil),
		versions: prometheus.NewDesc("pgseal_key_versions", "Key versions per key set and state (primary, active, disabled).", []string{"key_set", "state"}, nil),
		loaded:   prometheus.NewDesc("pgseal_keystore_loaded", "1 when a keystore is loaded, else 0.", nil, nil),
	}
}

func (k *keyCollector) set(ks *keystore.Keystore) {
	if ks == nil {
		k.sets.Store(nil)
		return
	}
	sets := ks.KeySets()
	k.sets.Store(&sets)
}

// Describe implements prometheus.Collector.
func (k *keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- k.age
	ch <- k.primary
	ch <- k.versions
	ch <- k.loaded
}

// Collect implements prometheus.Collector.
func (k *keyCollector) Collect(ch chan<- prometheus.Metric) {
	p := k.sets.Load()
	if p == nil {
		ch <- prometheus.MustNewConstMetric(k.loaded, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(k.loaded, prometheus.GaugeValue, 1)
	now := k.now()
	for _, s := range *p {
		counts := map[keystore.State]int{keystore.StatePrimary: 0, keystore.StateActive: 0, keystore.StateDisabled: 0}
		for _, v := range s.Versions {
			counts[v.State]++
			if v.Version == s.Primary {
				ch <- prometheus.MustNewConstMetric(k.age, prometheus.GaugeValue, now.Sub(v.Created).Seconds(), s.Name)
			}
		}
		ch <- prometheus.MustNewConstMetric(k.primary, prometheus.GaugeValue, float64(s.Primary), s.Name)
		for st, n := range counts {
			ch <- prometheus.MustNewConstMetric(k.versions, prometheus.GaugeValue, float64(n), s.Name, st.String())
		}
	}
}
