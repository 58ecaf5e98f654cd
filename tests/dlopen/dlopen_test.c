/* SPDX-License-Identifier: ISC */
/* lockbox loaded with dlopen, as PAM and PKCS#11 modules and language bindings load it: by a
 * program that does not link it, with a thread that already exists when it is loaded (its
 * thread-local storage then comes from glibc's surplus for such libraries), then unloaded and
 * loaded again. Usage: dlopen_test PATH-TO-liblockbox.so */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lockbox/lockbox.h>

static int failures;
#define EXPECT(condition)                                                   \
  do {                                                                      \
    if (!(condition)) {                                                     \
      fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #condition); \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

struct api {
  void* (*malloc_)(size_t);
  void (*free_)(void*);
  const char* (*last_error)(void);
  lockbox_sealed* (*seal)(const void*, size_t);
  const void* (*open)(lockbox_sealed*);
  void (*close)(lockbox_sealed*, const void*);
  void (*sealed_free)(lockbox_sealed*);
};

static void* load(const char* path, struct api* api) {
  void* library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return NULL;
  }
  /* POSIX allows this conversion from void* for dlsym's results. */
  *(void**)&api->malloc_ = dlsym(library, "lockbox_malloc");
  *(void**)&api->free_ = dlsym(library, "lockbox_free");
  *(void**)&api->last_error = dlsym(library, "lockbox_last_error");
  *(void**)&api->seal = dlsym(library, "lockbox_seal");
  *(void**)&api->open = dlsym(library, "lockbox_sealed_open");
  *(void**)&api->close = dlsym(library, "lockbox_sealed_close");
  *(void**)&api->sealed_free = dlsym(library, "lockbox_sealed_free");
  EXPECT(api->malloc_ && api->free_ && api->last_error && api->seal && api->open && api->close &&
         api->sealed_free);
  return library;
}

/* Allocates, writes, frees, and seals: every piece of thread-local state lockbox has. */
static void use(const struct api* api) {
  void* keys[200];
  for (int i = 0; i < 200; ++i) {
    keys[i] = api->malloc_(i % 2 ? 32 : 3000);
    EXPECT(keys[i] != NULL);
    if (keys[i] != NULL) memset(keys[i], i, 32);
  }
  for (int i = 0; i < 200; ++i) api->free_(keys[i]);
  EXPECT(api->malloc_((size_t)-1) == NULL);
  EXPECT(strstr(api->last_error(), "more than lockbox can ever provide") != NULL);
  lockbox_sealed* box = api->seal("sealed", 7);
  EXPECT(box != NULL);
  if (box != NULL) {
    const char* view = api->open(box);
    EXPECT(view != NULL && strcmp(view, "sealed") == 0);
    if (view != NULL) api->close(box, view);
    api->sealed_free(box);
  }
}

static const struct api* g_api;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_loaded = PTHREAD_COND_INITIALIZER;

/* A thread that exists before the library is loaded, and uses it after. */
static void* early_thread(void* unused) {
  (void)unused;
  pthread_mutex_lock(&g_mutex);
  while (g_api == NULL) pthread_cond_wait(&g_loaded, &g_mutex);
  pthread_mutex_unlock(&g_mutex);
  use(g_api);
  return NULL;
}

static void* late_thread(void* api) {
  use(api);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: dlopen_test PATH-TO-liblockbox.so\n");
    return 2;
  }
  pthread_t early, late;
  EXPECT(pthread_create(&early, NULL, early_thread, NULL) == 0);
  struct api api;
  void* library = load(argv[1], &api);
  if (library == NULL) return 1;
  pthread_mutex_lock(&g_mutex);
  g_api = &api;
  pthread_cond_broadcast(&g_loaded);
  pthread_mutex_unlock(&g_mutex);
  use(&api);
  EXPECT(pthread_create(&late, NULL, late_thread, &api) == 0);
  pthread_join(early, NULL);
  pthread_join(late, NULL);
  EXPECT(dlclose(library) == 0);

  /* And again, as a program that loads and unloads a module more than once does. */
  library = load(argv[1], &api);
  if (library == NULL) return 1;
  use(&api);
  EXPECT(dlclose(library) == 0);
  printf("%s\n", failures == 0 ? "dlopen: all passed" : "dlopen: FAILED");
  return failures == 0 ? 0 : 1;
}
