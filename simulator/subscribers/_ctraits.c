/* Population.traits in C: the same tuple, bit for bit, for the forms gateways send.
 *
 * Built by build_ctraits.py (optional: population.py falls back to Python without it).
 * An object of type Traits is made once per Population from its tables and called with
 * one address:
 *
 *   - the four plain ASCII forms of an Egyptian mobile (2010XXXXXXXX, 010XXXXXXXX,
 *     +2010XXXXXXXX, 002010XXXXXXXX, heads 10/11/12/15) are recognised here exactly as
 *     numbering.normalize's fast paths do, and the rest of traits (block lookup, index,
 *     two splitmix64 finalisers, two alias draws) is done on 64-bit integers;
 *   - anything else (Arabic-Indic digits, separators, short codes, foreign numbers,
 *     invalid numbers, non-str) goes to the Python implementation given as `fallback`,
 *     so those results are Python's by construction.
 *
 * The line and person tuples returned are the tables' own objects (shared, as in Python).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>

#define CAP 100000000ULL /* PREFIX_CAPACITY */
#define NHEADS 6         /* heads 2010..2015, 2013/2014 absent */

typedef struct {
    PyObject **primary, **alias; /* owned references, nbins each */
} Values;

typedef struct {
    int present;
    int64_t start, count;
    uint64_t a, p_inv;
    unsigned bits;
    uint64_t mask;
    Py_ssize_t nbins;
    uint32_t *thr; /* <= 2^(32 - bits): 32 bits, half the cache lines of 64 */
    Values members, outsiders;
} Block;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;
    uint64_t k1, k2;
    int64_t c, q_inv, size;
    Block blocks[NHEADS];
    unsigned pbits;
    uint64_t pmask;
    Py_ssize_t pbins;
    uint32_t *pthr;
    Values person;
} TraitsObject;

static inline uint64_t mix_a(uint64_t h) {
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ULL;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBULL;
    return h;
}

static inline int all_digits(const unsigned char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned)(s[i] - '0') > 9) return 0;
    return 1;
}

/* s points at "201X": is X one of 0, 1, 2, 5? (s[0..3] are digits already or checked) */
static inline int mobile_head(const unsigned char *s) {
    return s[0] == '2' && s[1] == '0' && s[2] == '1' &&
           (s[3] == '0' || s[3] == '1' || s[3] == '2' || s[3] == '5');
}

static PyObject *
traits_fast(TraitsObject *self, PyObject *canonical, const unsigned char *d)
{
    /* d: the 12 ASCII digits of the canonical number, 201X.... */
    uint64_t number = 0;
    for (int i = 0; i < 12; i++) number = number * 10 + (uint64_t)(d[i] - '0');
    uint64_t head = number / CAP;
    Block *blk = (head >= 2010 && head < 2010 + NHEADS) ? &self->blocks[head - 2010] : NULL;
    if (blk == NULL || !blk->present) {
        PyObject *key = PyLong_FromUnsignedLongLong(head);
        if (key) { PyErr_SetObject(PyExc_KeyError, key); Py_DECREF(key); }
        return NULL;
    }
    uint64_t k = ((number - blk->a) % CAP) * blk->p_inv % CAP;
    long long index;
    Values *vals;
    if ((int64_t)k < blk->count) {
        int64_t v = (blk->start + (int64_t)k - self->c) % self->size;
        if (v < 0) v += self->size;
        index = (long long)((uint64_t)v * (uint64_t)self->q_inv % (uint64_t)self->size);
        vals = &blk->members;
    } else {
        index = -1;
        vals = &blk->outsiders;
    }
    uint64_t h = mix_a(number ^ self->k1);
    h ^= h >> 31;
    uint64_t e = mix_a(number ^ self->k2);
    e ^= e >> 31;

    uint64_t x = h & 0xFFFFFFFFULL;
    uint64_t b = x & blk->mask;
    PyObject *line = (x >> blk->bits) < blk->thr[b] ? vals->primary[b] : vals->alias[b];
    x = h >> 32;
    b = x & self->pmask;
    PyObject *person =
        (x >> self->pbits) < self->pthr[b] ? self->person.primary[b] : self->person.alias[b];

    PyObject *pindex = PyLong_FromLongLong(index);
    if (!pindex) return NULL;
    PyObject *pe = PyLong_FromUnsignedLongLong(e);
    if (!pe) { Py_DECREF(pindex); return NULL; }
    PyObject *t = PyTuple_New(5);
    if (!t) { Py_DECREF(pindex); Py_DECREF(pe); return NULL; }
    Py_INCREF(canonical);
    Py_INCREF(line);
    Py_INCREF(person);
    PyTuple_SET_ITEM(t, 0, canonical);
    PyTuple_SET_ITEM(t, 1, pindex);
    PyTuple_SET_ITEM(t, 2, line);
    PyTuple_SET_ITEM(t, 3, person);
    PyTuple_SET_ITEM(t, 4, pe);
    return t;
}

static PyObject *
traits_one(TraitsObject *self, PyObject *addr)
{
    if (PyUnicode_Check(addr) && PyUnicode_IS_ASCII(addr)) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(addr);
        const unsigned char *s = PyUnicode_1BYTE_DATA(addr);
        if (n == 12) {
            if (mobile_head(s) && all_digits(s + 4, 8))
                return traits_fast(self, addr, s);
        } else if (n == 11) {
            if (s[0] == '0' && s[1] == '1' &&
                (s[2] == '0' || s[2] == '1' || s[2] == '2' || s[2] == '5') &&
                all_digits(s + 3, 8)) {
                unsigned char buf[12];
                buf[0] = '2';
                buf[1] = '0';
                memcpy(buf + 2, s + 1, 10);
                PyObject *canonical = PyUnicode_FromStringAndSize((const char *)buf, 12);
                if (!canonical) return NULL;
                PyObject *r = traits_fast(self, canonical, buf);
                Py_DECREF(canonical);
                return r;
            }
        } else if (n == 13 || n == 14) {
            Py_ssize_t skip = n - 12; /* "+" or "00" */
            int lead_ok = n == 13 ? s[0] == '+' : (s[0] == '0' && s[1] == '0');
            if (lead_ok && mobile_head(s + skip) && all_digits(s + skip + 4, 8)) {
                PyObject *canonical = PyUnicode_FromStringAndSize((const char *)s + skip, 12);
                if (!canonical) return NULL;
                PyObject *r = traits_fast(self, canonical, s + skip);
                Py_DECREF(canonical);
                return r;
            }
        }
    }
    return PyObject_CallOneArg(self->fallback, addr);
}

static PyObject *
traits_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "traits() takes exactly one positional argument");
        return NULL;
    }
    return traits_one((TraitsObject *)op, args[0]);
}

/* --- construction ------------------------------------------------------------------- */

static void objects_clear(PyObject ***objs, Py_ssize_t n) {
    if (*objs) {
        for (Py_ssize_t i = 0; i < n; i++) Py_CLEAR((*objs)[i]);
        PyMem_Free(*objs);
        *objs = NULL;
    }
}

static void values_clear(Values *v, Py_ssize_t n) {
    objects_clear(&v->primary, n);
    objects_clear(&v->alias, n);
}

static PyObject **copy_objects(PyObject *seq, Py_ssize_t n, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return NULL;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values", what, n);
        return NULL;
    }
    PyObject **out = PyMem_Calloc((size_t)n, sizeof(PyObject *));
    if (!out) { Py_DECREF(fast); PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PySequence_Fast_GET_ITEM(fast, i);
        Py_INCREF(out[i]);
    }
    Py_DECREF(fast);
    return out;
}

/* An alias table's two value columns, n each; 0, or -1 with an exception set. */
static int copy_values(Values *v, PyObject *primary, PyObject *alias, Py_ssize_t n) {
    if (!(v->primary = copy_objects(primary, n, "primary"))) return -1;
    if (!(v->alias = copy_objects(alias, n, "alias"))) return -1;
    return 0;
}

static uint32_t *copy_thresholds(PyObject *seq, Py_ssize_t n) {
    PyObject *fast = PySequence_Fast(seq, "thresholds");
    if (!fast) return NULL;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "thresholds: expected %zd values", n);
        return NULL;
    }
    uint32_t *out = PyMem_Calloc((size_t)n, sizeof(uint32_t));
    if (!out) { Py_DECREF(fast); PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned long long t = PyLong_AsUnsignedLongLong(PySequence_Fast_GET_ITEM(fast, i));
        if (t == (unsigned long long)-1 && PyErr_Occurred()) {
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        if (t > 0xFFFFFFFFULL) {
            PyMem_Free(out);
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "threshold above 2^32");
            return NULL;
        }
        out[i] = (uint32_t)t;
    }
    Py_DECREF(fast);
    return out;
}

static int Traits_clear(TraitsObject *self) {
    Py_CLEAR(self->fallback);
    for (int i = 0; i < NHEADS; i++) {
        Block *b = &self->blocks[i];
        values_clear(&b->members, b->nbins);
        values_clear(&b->outsiders, b->nbins);
    }
    values_clear(&self->person, self->pbins);
    return 0;
}

/* Only the fallback (a bound method of the Population, which holds this object) can
 * close a cycle. The tables' tuples hold enums, strings and bools, never this object, and
 * the Population's own lists keep them alive: not visiting their ~20,000 references
 * keeps every collection of this object's generation ~0.7 M instructions cheaper. */
static int Traits_traverse(TraitsObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->fallback);
    return 0;
}

static void Traits_dealloc(TraitsObject *self) {
    PyObject_GC_UnTrack(self);
    Traits_clear(self);
    for (int i = 0; i < NHEADS; i++) PyMem_Free(self->blocks[i].thr);
    PyMem_Free(self->pthr);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Traits(fallback, k1, k2, c, q_inv, size, by_head, person)
 *   by_head: {head: entry} as Population._by_head (entry = start, count, a, p, p_inv,
 *            base, bits, mask, thresholds, primary, alias, o_primary, o_alias)
 *   person:  (bits, mask, thresholds, primary, alias) as Population._person */
static PyObject *Traits_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *fallback, *k1, *k2, *by_head, *person;
    long long c, q_inv, size;
    if (!PyArg_ParseTuple(args, "OO!O!LLLO!O!:Traits", &fallback, &PyLong_Type, &k1,
                          &PyLong_Type, &k2, &c, &q_inv, &size, &PyDict_Type, &by_head,
                          &PyTuple_Type, &person))
        return NULL;
    if (size < 1) {
        PyErr_SetString(PyExc_ValueError, "size must be positive");
        return NULL;
    }
    TraitsObject *self = (TraitsObject *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->vectorcall = traits_vectorcall;
    Py_INCREF(fallback);
    self->fallback = fallback;
    self->k1 = PyLong_AsUnsignedLongLong(k1);
    if (PyErr_Occurred()) goto fail;
    self->k2 = PyLong_AsUnsignedLongLong(k2);
    if (PyErr_Occurred()) goto fail;
    self->c = c;
    self->q_inv = q_inv;
    self->size = size;

    PyObject *key, *entry;
    Py_ssize_t pos = 0;
    while (PyDict_Next(by_head, &pos, &key, &entry)) {
        long long head = PyLong_AsLongLong(key);
        if (head == -1 && PyErr_Occurred()) goto fail;
        if (head < 2010 || head >= 2010 + NHEADS || !PyTuple_Check(entry) ||
            PyTuple_GET_SIZE(entry) != 13) {
            PyErr_SetString(PyExc_ValueError, "unexpected by_head entry");
            goto fail;
        }
        Block *b = &self->blocks[head - 2010];
        long long start = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 0));
        long long count = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 1));
        unsigned long long a = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 2));
        unsigned long long p_inv = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(entry, 4));
        long bits = PyLong_AsLong(PyTuple_GET_ITEM(entry, 6));
        if (PyErr_Occurred()) goto fail;
        if (bits < 1 || bits > 20 || a >= CAP || p_inv >= CAP) {
            PyErr_SetString(PyExc_ValueError, "unexpected block parameters");
            goto fail;
        }
        b->start = start;
        b->count = count;
        b->a = a;
        b->p_inv = p_inv;
        b->bits = (unsigned)bits;
        b->mask = (1ULL << bits) - 1;
        b->nbins = (Py_ssize_t)1 << bits;
        if (!(b->thr = copy_thresholds(PyTuple_GET_ITEM(entry, 8), b->nbins))) goto fail;
        if (copy_values(&b->members, PyTuple_GET_ITEM(entry, 9), PyTuple_GET_ITEM(entry, 10),
                        b->nbins) < 0 ||
            copy_values(&b->outsiders, PyTuple_GET_ITEM(entry, 11), PyTuple_GET_ITEM(entry, 12),
                        b->nbins) < 0)
            goto fail;
        b->present = 1;
    }
    if (PyTuple_GET_SIZE(person) != 5) {
        PyErr_SetString(PyExc_ValueError, "person: expected (bits, mask, thr, primary, alias)");
        goto fail;
    }
    long pbits = PyLong_AsLong(PyTuple_GET_ITEM(person, 0));
    if (PyErr_Occurred()) goto fail;
    if (pbits < 1 || pbits > 24) {
        PyErr_SetString(PyExc_ValueError, "unexpected person table bits");
        goto fail;
    }
    self->pbits = (unsigned)pbits;
    self->pmask = (1ULL << pbits) - 1;
    self->pbins = (Py_ssize_t)1 << pbits;
    if (!(self->pthr = copy_thresholds(PyTuple_GET_ITEM(person, 2), self->pbins))) goto fail;
    if (copy_values(&self->person, PyTuple_GET_ITEM(person, 3), PyTuple_GET_ITEM(person, 4),
                    self->pbins) < 0)
        goto fail;
    return (PyObject *)self;
fail:
    Py_DECREF(self);
    return NULL;
}

static PyTypeObject TraitsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "simulator.subscribers._ctraits.Traits",
    .tp_doc = PyDoc_STR("Population.traits for one population's tables (see _ctraits.c)."),
    .tp_basicsize = sizeof(TraitsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = Traits_new,
    .tp_dealloc = (destructor)Traits_dealloc,
    .tp_traverse = (traverseproc)Traits_traverse,
    .tp_clear = (inquiry)Traits_clear,
    .tp_vectorcall_offset = offsetof(TraitsObject, vectorcall),
    .tp_call = PyVectorcall_Call,
};

/* --- the per-message draws of the SMSC's hot path (delivery.py, behaviour.py) ---------- */

#define GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t mix64(uint64_t x) {
    x += GOLDEN;
    x = mix_a(x);
    return x ^ (x >> 31);
}

static int u64_arg(PyObject *v, uint64_t *out) {
    /* The low 64 bits, as Python's ``& _M64`` keeps them (negative ints too). */
    if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "an int is required");
        return -1;
    }
    unsigned long long x = PyLong_AsUnsignedLongLongMask(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) return -1;
    *out = (uint64_t)x;
    return 0;
}

/* network_delay(median, sigma, entropy, salt): DeliveryModel.delay_for's lognormal
 * (sigma != 0), the same operations in the same order, so the same double. */
static PyObject *
network_delay(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "network_delay(median, sigma, entropy, salt)");
        return NULL;
    }
    double median = PyFloat_AsDouble(args[0]);
    if (median == -1.0 && PyErr_Occurred()) return NULL;
    double sigma = PyFloat_AsDouble(args[1]);
    if (sigma == -1.0 && PyErr_Occurred()) return NULL;
    uint64_t entropy, salt;
    if (u64_arg(args[2], &entropy) < 0 || u64_arg(args[3], &salt) < 0) return NULL;
    uint64_t h = mix64(entropy ^ (salt * GOLDEN));
    double u1 = ((double)(h >> 38) + 0.5) / 67108864.0;
    double u2 = (double)((h >> 12) & ((1ULL << 26) - 1)) / 67108864.0;
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    return PyFloat_FromDouble(median * exp(sigma * z));
}

/* draw_unit(entropy, salt, seq): BehaviourModel.answers's first draw, in [0, 1). */
static PyObject *
draw_unit(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "draw_unit(entropy, salt, seq)");
        return NULL;
    }
    uint64_t entropy, salt, seq;
    if (u64_arg(args[0], &entropy) < 0 || u64_arg(args[1], &salt) < 0 ||
        u64_arg(args[2], &seq) < 0)
        return NULL;
    uint64_t x = mix64(entropy ^ salt ^ (seq * GOLDEN));
    return PyFloat_FromDouble((double)(x >> 11) * (1.0 / 9007199254740992.0));
}

static PyMethodDef ctraits_functions[] = {
    {"network_delay", (PyCFunction)(void (*)(void))network_delay, METH_FASTCALL,
     "network_delay(median, sigma, entropy, salt): DeliveryModel.delay_for's draw."},
    {"draw_unit", (PyCFunction)(void (*)(void))draw_unit, METH_FASTCALL,
     "draw_unit(entropy, salt, seq): BehaviourModel.answers's first draw."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ctraits_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "simulator.subscribers._ctraits",
    .m_doc = "Population.traits in C (optional; population.py falls back to Python).",
    .m_size = -1,
    .m_methods = ctraits_functions,
};

PyMODINIT_FUNC PyInit__ctraits(void) {
    if (PyType_Ready(&TraitsType) < 0) return NULL;
    PyObject *m = PyModule_Create(&ctraits_module);
    if (!m) return NULL;
    Py_INCREF(&TraitsType);
    if (PyModule_AddObject(m, "Traits", (PyObject *)&TraitsType) < 0) {
        Py_DECREF(&TraitsType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
