/* hello: the WAGI example app shipped with tauon.
 *
 * A WAGI handler is an ordinary command-line program: the request arrives as CGI environment
 * variables (REQUEST_METHOD, PATH_INFO, HTTP_*, ...) plus the body on stdin, and the response is
 * written to stdout as "Header: value" lines, a blank line, then the body.
 *
 * Routes (see scripts/build-example): /hello/... answers with a greeting; /... serves the files the
 * app ships (mounted read-only at / in the guest), with / meaning /index.html.
 *
 * Build: clang --target=wasm32-wasi -Oz -Wl,--strip-all -o hello.wasm hello.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env_or(const char *name, const char *fallback) {
    const char *value = getenv(name);
    return value && *value ? value : fallback;
}

static const char *content_type(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    return "text/plain; charset=utf-8";
}

static int serve_file(const char *path_info) {
    char path[512];
    if (strcmp(path_info, "/") == 0 || *path_info == '\0') path_info = "/index.html";
    if (strstr(path_info, "..") || strlen(path_info) >= sizeof(path)) return 0;
    snprintf(path, sizeof(path), "%s", path_info);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    printf("Content-Type: %s\n\n", content_type(path));
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 1;
}

int main(void) {
    const char *script = env_or("SCRIPT_NAME", "");
    const char *path_info = env_or("PATH_INFO", "");
    const char *query = env_or("QUERY_STRING", "");

    if (strcmp(script, "/hello") != 0) {
        if (serve_file(path_info)) return 0;
        printf("Status: 404\nContent-Type: text/plain\n\nnot found: %s\n", path_info);
        return 0;
    }
    printf("Content-Type: text/plain; charset=utf-8\n\n");
    printf("%s from tauon!\n", env_or("GREETING", "Hello"));
    printf("You asked for %s%s%s%s\n", script, path_info, *query ? "?" : "", query);
    printf("Method: %s\n", env_or("REQUEST_METHOD", "?"));
    return 0;
}
