/* tauon's deny adapter, in C against the canonical ABI (32-bit, wit-component's legacy names), built
 * with clang -nostdlib and wasm-tools by scripts/build-deny-adapter.
 *
 * A component dependency that does not inherit a capability set has its imports of these interfaces
 * satisfied by this component instead of the host (tauon.wasm.compose), the way Spin wraps
 * dependencies with the deny adapter of crates/capabilities: calls that would reach a capability fail
 * with the interface's own "denied" error, listings are empty, and methods of resources that can never
 * be created trap.
 */
#include <stddef.h>
#include <stdint.h>

#define IMPORT(module, name) __attribute__((import_module(module), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("wasi:http/types@0.2.0", "[resource-drop]outgoing-request") void drop_request(int32_t handle);
IMPORT("wasi:http/types@0.2.0", "[resource-drop]request-options") void drop_options(int32_t handle);

/* Bump allocator: an instance lives for one request, so nothing is freed. */
extern unsigned char __heap_base;
static uintptr_t heap_top = (uintptr_t)&__heap_base;

EXPORT("cabi_realloc")
void *cabi_realloc(void *old, size_t old_size, size_t align, size_t new_size) {
    uintptr_t start = (heap_top + align - 1) & ~(uintptr_t)(align - 1);
    uintptr_t end = start + new_size;
    size_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535) / 65536) < 0)
        __builtin_trap();
    heap_top = end;
    unsigned char *dst = (unsigned char *)start;
    for (size_t i = 0; i < old_size && i < new_size; i++) dst[i] = ((unsigned char *)old)[i];
    return dst;
}

/* The return area of every export (each call writes it before returning its address). */
static union { uint64_t align; uint8_t bytes[32]; } ret;

static void put_u8(int at, uint8_t v) { ret.bytes[at] = v; }
static void put_i32(int at, int32_t v) { *(int32_t *)(ret.bytes + at) = v; }
static void *area(void) {
    for (int i = 0; i < 32; i++) ret.bytes[i] = 0;
    return &ret;
}

#define DENIED(name) ("\"" name "\" is not permitted")
static const char http_denied[] = DENIED("wasi:http/outgoing-handler");
static const char config_denied[] = DENIED("wasi:config/store");

/* handle: func(request, options: option<request-options>) -> result<future-incoming-response,
 * error-code>; error-code is 8-aligned, so it sits at 8 and its payload at 16:
 * internal-error(option<string>) is case 38. */
EXPORT("wasi:http/outgoing-handler@0.2.0#handle")
void *http_handle(int32_t request, int32_t has_options, int32_t options) {
    drop_request(request);
    if (has_options) drop_options(options);
    void *r = area();
    put_u8(0, 1);
    put_u8(8, 38);
    put_u8(16, 1);
    put_i32(20, (int32_t)(uintptr_t)http_denied);
    put_i32(24, (int32_t)(sizeof http_denied - 1));
    return r;
}

/* Empty environment, arguments, no cwd, no preopened directories. */
EXPORT("wasi:cli/environment@0.2.0#get-environment") void *env_get_environment(void) { return area(); }
EXPORT("wasi:cli/environment@0.2.0#get-arguments") void *env_get_arguments(void) { return area(); }
EXPORT("wasi:cli/environment@0.2.0#initial-cwd") void *env_initial_cwd(void) { return area(); }
EXPORT("wasi:filesystem/preopens@0.2.0#get-directories") void *preopens_get(void) { return area(); }

/* get: func(name) -> result<string, error>: err(undefined(name)), undefined being case 1. */
EXPORT("fermyon:spin/variables@2.0.0#get")
void *variables_get(int32_t name, int32_t len) {
    void *r = area();
    put_u8(0, 1);
    put_u8(4, 1);
    put_i32(8, name);
    put_i32(12, len);
    return r;
}

/* open: err(access-denied): case 2 of key-value's error, case 1 of sqlite's. */
EXPORT("fermyon:spin/key-value@2.0.0#[static]store.open")
void *kv_open(int32_t label, int32_t len) {
    (void)label, (void)len;
    void *r = area();
    put_u8(0, 1);
    put_u8(4, 2);
    return r;
}

EXPORT("fermyon:spin/sqlite@2.0.0#[static]connection.open")
void *sqlite_open(int32_t name, int32_t len) {
    (void)name, (void)len;
    void *r = area();
    put_u8(0, 1);
    put_u8(4, 1);
    return r;
}

/* No store or connection can exist, so their methods are unreachable. */
EXPORT("fermyon:spin/key-value@2.0.0#[method]store.get") void *kv_get(int32_t a, int32_t b, int32_t c) {
    (void)a, (void)b, (void)c;
    __builtin_trap();
}
EXPORT("fermyon:spin/key-value@2.0.0#[method]store.set")
void *kv_set(int32_t a, int32_t b, int32_t c, int32_t d, int32_t e) {
    (void)a, (void)b, (void)c, (void)d, (void)e;
    __builtin_trap();
}
EXPORT("fermyon:spin/key-value@2.0.0#[method]store.delete")
void *kv_delete(int32_t a, int32_t b, int32_t c) {
    (void)a, (void)b, (void)c;
    __builtin_trap();
}
EXPORT("fermyon:spin/key-value@2.0.0#[method]store.exists")
void *kv_exists(int32_t a, int32_t b, int32_t c) {
    (void)a, (void)b, (void)c;
    __builtin_trap();
}
EXPORT("fermyon:spin/key-value@2.0.0#[method]store.get-keys") void *kv_get_keys(int32_t a) {
    (void)a;
    __builtin_trap();
}
EXPORT("fermyon:spin/key-value@2.0.0#[dtor]store") void kv_dtor(int32_t rep) { (void)rep; }
EXPORT("fermyon:spin/sqlite@2.0.0#[method]connection.execute")
void *sqlite_execute(int32_t a, int32_t b, int32_t c, int32_t d, int32_t e) {
    (void)a, (void)b, (void)c, (void)d, (void)e;
    __builtin_trap();
}
EXPORT("fermyon:spin/sqlite@2.0.0#[dtor]connection") void sqlite_dtor(int32_t rep) { (void)rep; }

/* get / get-all: err(io(message)), io being case 1. */
static void *config_denied_result(void) {
    void *r = area();
    put_u8(0, 1);
    put_u8(4, 1);
    put_i32(8, (int32_t)(uintptr_t)config_denied);
    put_i32(12, (int32_t)(sizeof config_denied - 1));
    return r;
}
EXPORT("wasi:config/store@0.2.0-draft-2024-09-27#get") void *config_get(int32_t key, int32_t len) {
    (void)key, (void)len;
    return config_denied_result();
}
EXPORT("wasi:config/store@0.2.0-draft-2024-09-27#get-all") void *config_get_all(void) {
    return config_denied_result();
}
