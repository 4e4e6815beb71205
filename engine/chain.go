package engine

import "github.com/phonehome/phonehome/event"

// Chain runs classifiers in order over every event; events a classifier
// emits go out after the event that caused them without passing through
// the rest of the chain (alerts are not re-classified).
type Chain []Classifier

var _ Classifier = Chain(nil)

// Process implements Classifier.
func (c Chain) Process(ev *event.Event, emit func(*event.Event)) {
	for _, cl := range c {
		cl.Process(ev, emit)
	}
}

// Tick implements Classifier.
func (c Chain) Tick(now int64, emit func(*event.Event)) {
	for _, cl := range c {
		cl.Tick(now, emit)
	}
}

// Finish implements Classifier.
func (c Chain) Finish(now int64, emit func(*event.Event)) {
	for _, cl := range c {
		cl.Finish(now, emit)
	}
}
