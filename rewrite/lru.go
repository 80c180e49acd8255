package rewrite

import (
	"container/list"
	"sync"
)

// planCache is a bounded LRU of analysis results keyed by statement text
// and search_path. It bounds both the number of entries and the total
// length of the cached texts. Safe for concurrent use.
type planCache struct {
	mu       sync.Mutex
	maxItems int
	maxBytes int
	bytes    int
	ll       *list.List
	items    map[string]*list.Element
}

type cacheEntry struct {
	key  string
	plan *Plan
	err  error
}

func newPlanCache(maxItems, maxBytes int) *planCache {
	return &planCache{maxItems: maxItems, maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *planCache) get(key string) (*Plan, error, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return nil, nil, false
	}
	c.ll.MoveToFront(e)
	ent := e.Value.(*cacheEntry)
	return ent.plan, ent.err, true
}

func (c *planCache) put(key string, plan *Plan, err error) {
	if c.maxItems <= 0 || len(key) > c.maxBytes/8 {
		return // too large to be worth keeping
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		ent := e.Value.(*cacheEntry)
		ent.plan, ent.err = plan, err
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, plan: plan, err: err})
	c.bytes += len(key)
	for c.ll.Len() > c.maxItems || c.bytes > c.maxBytes {
		last := c.ll.Back()
		ent := last.Value.(*cacheEntry)
		c.ll.Remove(last)
		delete(c.items, ent.key)
		c.bytes -= len(ent.key)
	}
}

func (c *planCache) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.items)
	c.bytes = 0
}

func (c *planCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
