package store

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// The address manager's records (internal/ipam), in three buckets of the
// same file, added without a schema bump (an older build ignores them):
//
//	ipam_pools     pool id → poolMetaRecord (JSON)
//	ipam_used      pool id NUL address → Unix nanoseconds when given out
//	               (empty in the first builds of these buckets: read as a
//	               time long past, so a lost release may still be taken back)
//	ipam_released  subnet NUL address → Unix nanoseconds
//
// One key per address keeps every request's write small whatever the
// pool's size.
var (
	bucketIPAMPools    = []byte("ipam_pools")
	bucketIPAMUsed     = []byte("ipam_used")
	bucketIPAMReleased = []byte("ipam_released")
)

const keySep = "\x00"

type poolMetaRecord struct {
	ID      string `json:"id"`
	Space   string `json:"space"`
	Pool    string `json:"pool"`
	Range   string `json:"range"`
	Last    string `json:"last,omitempty"`
	Created int64  `json:"created"`
	Network string `json:"network,omitempty"`
	Role    string `json:"role,omitempty"`
}

// PoolAddr names one address of one pool, and (for Take) when it was given.
type PoolAddr struct {
	PoolID string
	Addr   netip.Addr
	At     time.Time
}

// IPAMChange is one atomic change of the address manager's records.
type IPAMChange struct {
	PutPool     *model.IPAMPool // its meta only; addresses go through Take and Give
	DeletePools []string        // each pool and every address it holds
	Take        []PoolAddr
	Give        []PoolAddr
	Released    []model.IPAMRelease // set, or moved to a later time
	Forget      []model.IPAMRelease // dropped (At is ignored)
}

// ApplyIPAM writes c in one transaction.
func (s *Store) ApplyIPAM(c IPAMChange) error {
	var meta []byte
	if p := c.PutPool; p != nil {
		r := poolMetaRecord{ID: p.ID, Space: p.Space, Pool: p.Pool.String(), Range: p.Range.String(), Created: p.Created.UnixNano(),
			Network: p.Network, Role: p.Role}
		if p.Last.IsValid() {
			r.Last = p.Last.String()
		}
		var err error
		if meta, err = encode(p.ID, r); err != nil {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		pools, used, rel := tx.Bucket(bucketIPAMPools), tx.Bucket(bucketIPAMUsed), tx.Bucket(bucketIPAMReleased)
		for _, id := range c.DeletePools {
			if err := pools.Delete([]byte(id)); err != nil {
				return err
			}
			prefix := []byte(id + keySep)
			cur := used.Cursor()
			for k, _ := cur.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, _ = cur.Seek(prefix) {
				if err := used.Delete(k); err != nil {
					return err
				}
			}
		}
		if meta != nil {
			if err := pools.Put([]byte(c.PutPool.ID), meta); err != nil {
				return err
			}
		}
		for _, a := range c.Give {
			if err := used.Delete(usedKey(a)); err != nil {
				return err
			}
		}
		for _, a := range c.Take {
			if err := used.Put(usedKey(a), []byte(strconv.FormatInt(a.At.UnixNano(), 10))); err != nil {
				return err
			}
		}
		for _, r := range c.Forget {
			if err := rel.Delete(releasedKey(r)); err != nil {
				return err
			}
		}
		for _, r := range c.Released {
			if err := rel.Put(releasedKey(r), []byte(strconv.FormatInt(r.At.UnixNano(), 10))); err != nil {
				return err
			}
		}
		return nil
	})
}

func usedKey(a PoolAddr) []byte { return []byte(a.PoolID + keySep + a.Addr.String()) }

func releasedKey(r model.IPAMRelease) []byte {
	return []byte(r.Pool.String() + keySep + r.Addr.String())
}

// LoadIPAM reads the address manager's records. Like Load, records that do
// not decode are reported in bad and skipped; an address of a pool that is
// not there is reported too.
func (s *Store) LoadIPAM() (pools []*model.IPAMPool, released []model.IPAMRelease, bad []BadRecord, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		byID := map[string]*model.IPAMPool{}
		if err := tx.Bucket(bucketIPAMPools).ForEach(func(k, v []byte) error {
			var r poolMetaRecord
			p, cerr := decode(k, v, &r, r.model, func() string { return r.ID })
			if cerr != nil {
				bad = append(bad, BadRecord{"ipam pool", string(k), cerr.Error()})
				return nil
			}
			byID[p.ID] = p
			pools = append(pools, p)
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketIPAMUsed).ForEach(func(k, v []byte) error {
			id, addr, ok := strings.Cut(string(k), keySep)
			a, perr := netip.ParseAddr(addr)
			p := byID[id]
			var at time.Time
			var terr error
			if len(v) > 0 {
				var ns int64
				ns, terr = strconv.ParseInt(string(v), 10, 64)
				at = time.Unix(0, ns).UTC()
			}
			switch {
			case !ok || perr != nil:
				bad = append(bad, BadRecord{"ipam address", string(k), fmt.Sprintf("not a pool id and an address: %v", perr)})
			case p == nil:
				bad = append(bad, BadRecord{"ipam address", string(k), "its pool is not saved"})
			case terr != nil:
				bad = append(bad, BadRecord{"ipam address", string(k), fmt.Sprintf("time: %v", terr)})
			default:
				p.Used[a] = at
			}
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketIPAMReleased).ForEach(func(k, v []byte) error {
			r, cerr := releasedRecord(k, v)
			if cerr != nil {
				bad = append(bad, BadRecord{"ipam release", string(k), cerr.Error()})
				return nil
			}
			released = append(released, r)
			return nil
		})
	})
	return pools, released, bad, err
}

// DropBadIPAM deletes the records LoadIPAM reported as bad.
func (s *Store) DropBadIPAM(bad []BadRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range bad {
			var bucket *bolt.Bucket
			switch b.Kind {
			case "ipam pool":
				bucket = tx.Bucket(bucketIPAMPools)
			case "ipam address":
				bucket = tx.Bucket(bucketIPAMUsed)
			case "ipam release":
				bucket = tx.Bucket(bucketIPAMReleased)
			default:
				continue
			}
			if err := bucket.Delete([]byte(b.Key)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (r *poolMetaRecord) model() (*model.IPAMPool, error) {
	pool, err := netip.ParsePrefix(r.Pool)
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	rng, err := netip.ParsePrefix(r.Range)
	if err != nil {
		return nil, fmt.Errorf("range: %w", err)
	}
	p := &model.IPAMPool{ID: r.ID, Space: r.Space, Pool: pool, Range: rng, Created: time.Unix(0, r.Created).UTC(),
		Network: r.Network, Role: r.Role, Used: map[netip.Addr]time.Time{}}
	if r.Last != "" {
		if p.Last, err = netip.ParseAddr(r.Last); err != nil {
			return nil, fmt.Errorf("last: %w", err)
		}
	}
	return p, nil
}

func releasedRecord(k, v []byte) (model.IPAMRelease, error) {
	parts := strings.Split(string(k), keySep)
	if len(parts) != 2 {
		return model.IPAMRelease{}, fmt.Errorf("key is not a subnet and an address")
	}
	pool, err := netip.ParsePrefix(parts[0])
	if err != nil {
		return model.IPAMRelease{}, err
	}
	addr, err := netip.ParseAddr(parts[1])
	if err != nil {
		return model.IPAMRelease{}, err
	}
	ns, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return model.IPAMRelease{}, fmt.Errorf("time: %w", err)
	}
	return model.IPAMRelease{Pool: pool, Addr: addr, At: time.Unix(0, ns).UTC()}, nil
}
