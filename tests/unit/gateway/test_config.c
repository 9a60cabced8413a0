/* Unit tests for user/gateway/config.c: defaults, a full config, every class
 * of error with its key path, overrides, URLs, the policy JSON round trip. */
#include "gateway/config.c"
#include "gateway/config_pod.c"
#include "gateway/config_policy.c"
#include "common/netaddr.c"
#include "gateway/jsonpath.c"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"

static struct gw_config cfg;
static char err[512];

static int parse(const char *json)
{
    err[0] = 0;
    return gw_config_parse(json, strlen(json), &cfg, err, sizeof(err));
}

/* The config must fail with exactly this message. */
#define CHECK_ERR(json, msg)                                                  \
    do {                                                                      \
        CHECK_EQ(parse(json), -1);                                            \
        CHECK_STR(err, msg);                                                  \
    } while (0)

TEST(defaults)
{
    gw_config_defaults(&cfg);
    CHECK_STR(cfg.listen, "0.0.0.0:8080");
    CHECK_STR(cfg.admin_listen, "127.0.0.1:9090");
    CHECK_STR(cfg.admin_token, "");
    CHECK_EQ(cfg.workers, 0);
    CHECK_EQ(cfg.npods, 0);
    CHECK_EQ(cfg.policies.global.mode, POLICY_PREFIX_AWARE);
    CHECK_EQ(cfg.policies.global.baseline, POLICY_ROUND_ROBIN);
    CHECK_EQ(cfg.policies.global.shadow, 0);
    CHECK_NEAR(cfg.policies.global.canary_pct, 100, 0);
    CHECK_NEAR(cfg.policies.global.w_prefix, 3, 0);
    CHECK_NEAR(cfg.policies.global.w_queue, 2, 0);
    CHECK_NEAR(cfg.policies.global.w_kv, 2, 0);
    CHECK_NEAR(cfg.policies.global.w_lora, 1, 0);
    CHECK_NEAR(cfg.policies.global.w_session, 1, 0);
    CHECK_NEAR(cfg.policies.global.queue_sat, 5, 0);
    CHECK_NEAR(cfg.policies.global.kv_sat, 0.8, 0);
    CHECK_EQ(cfg.policies.global.stale_ms, 200);
    CHECK_NEAR(cfg.policies.global.bounded_load, 1.25, 0);
    CHECK_NEAR(cfg.policies.global.bounded_floor, 8, 0);
    CHECK_NEAR(cfg.policies.global.bounded_session, 2, 0);
    CHECK_EQ(cfg.policies.noverrides, 0);
    CHECK_EQ(cfg.block_bytes, 64);
    CHECK_EQ(cfg.max_blocks, 256);
    CHECK_EQ(cfg.index_max_entries, 2000000);
    CHECK_EQ(cfg.index_default_blocks, 0);
    CHECK_NEAR(cfg.bytes_per_token, 4, 0);
    CHECK_EQ(cfg.scrape_ms, 50);
    CHECK_EQ(cfg.scrape_timeout_ms, 1000);
    CHECK_EQ(cfg.health_ms, 1000);
    CHECK_EQ(cfg.models_ms, 5000);
    CHECK_EQ(cfg.max_header_bytes, 65536);
    CHECK_EQ(cfg.max_body_bytes, 33554432);
    CHECK_EQ(cfg.max_connections, 10000);
    CHECK_EQ(cfg.header_timeout_ms, 10000);
    CHECK_EQ(cfg.idle_timeout_ms, 60000);
    CHECK_EQ(cfg.connect_timeout_ms, 1000);
    CHECK_EQ(cfg.first_byte_timeout_ms, 120000);
    CHECK_EQ(cfg.max_buffered_bytes, 1048576);
    CHECK_STR(cfg.access_log, "-");
    /* an empty object is the defaults */
    struct gw_config d = cfg;
    memset(&cfg, 0x5a, sizeof(cfg));
    CHECK_EQ(parse("{}"), 0);
    CHECK(memcmp(&d, &cfg, sizeof(d)) == 0);
}

static const char FULL[] =
    "{\"listen\":\"127.0.0.1:18080\",\"workers\":4,\n"
    " \"admin\":{\"listen\":\"[::1]:19090\",\"token\":\"s3cret\"},\n"
    " \"pods\":[{\"url\":\"http://127.0.0.1:8000\",\"name\":\"pod-a\",\"engine\":\"vllm\","
    "\"models\":[\"m1\",\"lora-a\"]},\n"
    "          {\"url\":\"http://[::1]:8001/\",\"engine\":\"sglang\"},\n"
    "          {\"url\":\"http://localhost:8002\",\"engine\":\"trtllm\"}],\n"
    " \"policy\":{\"mode\":\"least-request\",\"baseline\":\"random\",\"shadow\":true,"
    "\"canary_percent\":25,\n"
    "   \"weights\":{\"prefix\":4,\"queue\":1.5,\"kv\":0,\"lora\":2,\"session\":0.5},"
    "\"queue_saturation\":7,\"kv_saturation\":0.9,\n"
    "   \"stale_ms\":300,\"bounded_load\":0,\"bounded_floor\":2,\"bounded_session\":3,\n"
    "   \"overrides\":{\"m1\":{\"mode\":\"round-robin\",\"weights\":{\"kv\":5}},"
    "\"org/big-model\":{\"stale_ms\":1000}}},\n"
    " \"fingerprint\":{\"block_bytes\":128,\"max_blocks\":512},\n"
    " \"index\":{\"max_entries\":100000,\"default_capacity_blocks\":5000,"
    "\"bytes_per_token\":3.5},\n"
    " \"scrape\":{\"interval_ms\":25,\"timeout_ms\":500,\"health_interval_ms\":2000,"
    "\"models_interval_ms\":0},\n"
    " \"limits\":{\"max_header_bytes\":8192,\"max_body_bytes\":1048576,"
    "\"max_connections\":100,\"header_timeout_ms\":5000,\"idle_timeout_ms\":30000,"
    "\"connect_timeout_ms\":200,\"first_byte_timeout_ms\":60000,"
    "\"max_buffered_bytes\":65536},\n"
    " \"access_log\":\"/tmp/kvgate-access.log\"}\n";

TEST(full_config)
{
    CHECK_EQ(parse(FULL), 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.listen, "127.0.0.1:18080");
    CHECK_EQ(cfg.workers, 4);
    CHECK_STR(cfg.admin_listen, "[::1]:19090");
    CHECK_STR(cfg.admin_token, "s3cret");
    CHECK_EQ(cfg.npods, 3);
    CHECK_STR(cfg.pods[0].name, "pod-a");
    CHECK_STR(cfg.pods[0].host, "127.0.0.1");
    CHECK_EQ(cfg.pods[0].port, 8000);
    CHECK_EQ(cfg.pods[0].engine, POD_ENGINE_VLLM);
    CHECK_EQ(cfg.pods[0].nmodels, 2);
    CHECK_STR(cfg.pods[0].models[0], "m1");
    CHECK_STR(cfg.pods[0].models[1], "lora-a");
    CHECK_STR(cfg.pods[1].name, "[::1]:8001");
    CHECK_STR(cfg.pods[1].host, "::1");
    CHECK_EQ(cfg.pods[1].engine, POD_ENGINE_SGLANG);
    CHECK_EQ(cfg.pods[1].nmodels, 0);
    CHECK_STR(cfg.pods[2].name, "localhost:8002");
    CHECK_EQ(cfg.pods[2].engine, POD_ENGINE_TRTLLM);
    CHECK_EQ(cfg.policies.global.mode, POLICY_LEAST_REQUEST);
    CHECK_EQ(cfg.policies.global.baseline, POLICY_RANDOM);
    CHECK_EQ(cfg.policies.global.shadow, 1);
    CHECK_NEAR(cfg.policies.global.canary_pct, 25, 0);
    CHECK_NEAR(cfg.policies.global.w_prefix, 4, 0);
    CHECK_NEAR(cfg.policies.global.w_queue, 1.5, 0);
    CHECK_NEAR(cfg.policies.global.w_kv, 0, 0);
    CHECK_NEAR(cfg.policies.global.w_lora, 2, 0);
    CHECK_NEAR(cfg.policies.global.w_session, 0.5, 0);
    CHECK_NEAR(cfg.policies.global.queue_sat, 7, 0);
    CHECK_NEAR(cfg.policies.global.kv_sat, 0.9, 0);
    CHECK_EQ(cfg.policies.global.stale_ms, 300);
    CHECK_NEAR(cfg.policies.global.bounded_load, 0, 0);
    CHECK_NEAR(cfg.policies.global.bounded_floor, 2, 0);
    CHECK_NEAR(cfg.policies.global.bounded_session, 3, 0);
    CHECK_EQ(cfg.policies.noverrides, 2);
    CHECK_EQ(cfg.block_bytes, 128);
    CHECK_EQ(cfg.max_blocks, 512);
    CHECK_EQ(cfg.index_max_entries, 100000);
    CHECK_EQ(cfg.index_default_blocks, 5000);
    CHECK_NEAR(cfg.bytes_per_token, 3.5, 0);
    CHECK_EQ(cfg.scrape_ms, 25);
    CHECK_EQ(cfg.scrape_timeout_ms, 500);
    CHECK_EQ(cfg.health_ms, 2000);
    CHECK_EQ(cfg.models_ms, 0);
    CHECK_EQ(cfg.max_header_bytes, 8192);
    CHECK_EQ(cfg.max_body_bytes, 1048576);
    CHECK_EQ(cfg.max_connections, 100);
    CHECK_EQ(cfg.header_timeout_ms, 5000);
    CHECK_EQ(cfg.idle_timeout_ms, 30000);
    CHECK_EQ(cfg.connect_timeout_ms, 200);
    CHECK_EQ(cfg.first_byte_timeout_ms, 60000);
    CHECK_EQ(cfg.max_buffered_bytes, 65536);
    CHECK_STR(cfg.access_log, "/tmp/kvgate-access.log");
}

TEST(overrides)
{
    CHECK_EQ(parse(FULL), 0);
    const struct policy_cfg *m1 = gw_policies_for(&cfg.policies, "m1");
    const struct policy_cfg *big = gw_policies_for(&cfg.policies, "org/big-model");
    const struct policy_cfg *other = gw_policies_for(&cfg.policies, "nope");
    CHECK(other == &cfg.policies.global);
    CHECK(gw_policies_for(&cfg.policies, NULL) == &cfg.policies.global);
    CHECK(m1 != &cfg.policies.global && big != &cfg.policies.global && m1 != big);
    /* set keys win, the rest is inherited from the global policy */
    CHECK_EQ(m1->mode, POLICY_ROUND_ROBIN);
    CHECK_NEAR(m1->w_kv, 5, 0);
    CHECK_NEAR(m1->w_prefix, 4, 0);
    CHECK_EQ(m1->stale_ms, 300);
    CHECK_EQ(big->mode, POLICY_LEAST_REQUEST);
    CHECK_EQ(big->stale_ms, 1000);
    CHECK_NEAR(big->kv_sat, 0.9, 0);
    /* inheritance does not depend on key order */
    CHECK_EQ(parse("{\"policy\":{\"overrides\":{\"m\":{\"kv_saturation\":0.5}},"
                   "\"queue_saturation\":9}}"), 0);
    CHECK_NEAR(gw_policies_for(&cfg.policies, "m")->queue_sat, 9, 0);
    CHECK_NEAR(gw_policies_for(&cfg.policies, "m")->kv_sat, 0.5, 0);
    CHECK_NEAR(cfg.policies.global.kv_sat, 0.8, 0);
    /* the override errors */
    CHECK_ERR("{\"policy\":{\"overrides\":{\"m1\":{\"mode\":\"fast\"}}}}",
              "policy.overrides.m1.mode: unknown mode \"fast\" (prefix-aware, "
              "least-request, round-robin, random, token-load)");
    CHECK_ERR("{\"policy\":{\"overrides\":{\"m1\":{\"overrides\":{}}}}}",
              "policy.overrides.m1: unknown key \"overrides\"");
    CHECK_ERR("{\"policy\":{\"overrides\":{\"org/m\":{\"stale_ms\":0}}}}",
              "policy.overrides[\"org/m\"].stale_ms: expected an integer in [1, 3600000]");
    CHECK_ERR("{\"policy\":{\"overrides\":[]}}",
              "policy.overrides: expected an object keyed by model name");
    CHECK_ERR("{\"policy\":{\"overrides\":{\"\":{}}}}",
              "policy.overrides[\"\"]: a model name is 1 to 127 bytes");
    CHECK_ERR("{\"policy\":{\"overrides\":{\"m\":{},\"m\":{}}}}",
              "policy.overrides: duplicate key \"m\"");
    /* at most GW_MAX_OVERRIDES */
    char big_json[4096];
    int n = snprintf(big_json, sizeof(big_json), "{\"policy\":{\"overrides\":{");
    for (int i = 0; i <= GW_MAX_OVERRIDES; i++)
        n += snprintf(big_json + n, sizeof(big_json) - (size_t)n, "%s\"m%d\":{}",
                      i ? "," : "", i);
    snprintf(big_json + n, sizeof(big_json) - (size_t)n, "}}}");
    CHECK_ERR(big_json, "policy.overrides: at most 32 overrides");
}

TEST(syntax_errors)
{
    CHECK_ERR("{\"listen\": }", "line 1, column 12: JSON syntax error");
    CHECK_ERR("{\n  \"workers\": 1,\n  \"listen\" \"x\"\n}",
              "line 3, column 12: JSON syntax error");
    CHECK_ERR("{} {}", "line 1, column 4: JSON syntax error (text after the "
                       "top-level object)");
    CHECK_ERR("", "line 1, column 1: JSON syntax error");
    CHECK_ERR("[1,2]", "top level: expected an object");
    /* the text need not be NUL-terminated */
    CHECK_EQ(gw_config_parse("{}xxxx", 2, &cfg, err, sizeof(err)), 0);
}

TEST(key_errors)
{
    CHECK_ERR("{\"polcy\":{}}", "unknown key \"polcy\" at top level");
    CHECK_ERR("{\"policy\":{\"weights\":{\"kvv\":1}}}",
              "policy.weights: unknown key \"kvv\"");
    CHECK_ERR("{\"scrape\":{\"interval\":5}}", "scrape: unknown key \"interval\"");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://1.2.3.4:1\",\"model\":[\"x\"]}]}",
              "pods[0]: unknown key \"model\"");
    CHECK_ERR("{\"workers\":1,\"workers\":2}", "duplicate key \"workers\" at top level");
    CHECK_ERR("{\"limits\":{\"max_connections\":1,\"max_connections\":1}}",
              "limits: duplicate key \"max_connections\"");
    CHECK_ERR("{\"x\\u0001\\\"\":1}", "unknown key \"x\\x01\\x22\" at top level");
}

TEST(type_and_range_errors)
{
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\"},{\"url\":\"http://10.0.0.2:1\"},"
              "{\"url\":\"ftp://x\"}]}",
              "pods[2].url: expected \"http://host:port\", got \"ftp://x\"");
    CHECK_ERR("{\"policy\":{\"weights\":{\"kv\":-1}}}",
              "policy.weights.kv: expected a number >= 0");
    CHECK_ERR("{\"policy\":{\"weights\":{\"kv\":\"2\"}}}",
              "policy.weights.kv: expected a number >= 0");
    CHECK_ERR("{\"limits\":{\"max_body_bytes\":10}}",
              "limits.max_body_bytes: expected an integer in [1024, 1073741824]");
    CHECK_ERR("{\"limits\":{\"max_body_bytes\":2048.5}}",
              "limits.max_body_bytes: expected an integer in [1024, 1073741824]");
    CHECK_ERR("{\"policy\":{\"mode\":\"fast\"}}",
              "policy.mode: unknown mode \"fast\" (prefix-aware, least-request, "
              "round-robin, random, token-load)");
    CHECK_ERR("{\"policy\":{\"baseline\":3}}",
              "policy.baseline: expected a string (prefix-aware, least-request, "
              "round-robin, random, token-load)");
    CHECK_ERR("{\"policy\":{\"shadow\":1}}", "policy.shadow: expected true or false");
    CHECK_ERR("{\"policy\":{\"canary_percent\":101}}",
              "policy.canary_percent: expected a number in [0, 100]");
    CHECK_ERR("{\"policy\":{\"queue_saturation\":0}}",
              "policy.queue_saturation: expected a number > 0");
    CHECK_ERR("{\"policy\":{\"kv_saturation\":-0.5}}",
              "policy.kv_saturation: expected a number > 0");
    CHECK_ERR("{\"policy\":{\"stale_ms\":0}}",
              "policy.stale_ms: expected an integer in [1, 3600000]");
    CHECK_ERR("{\"policy\":{\"bounded_load\":0.5}}",
              "policy.bounded_load: expected 0 (off) or a number >= 1");
    CHECK_ERR("{\"policy\":{\"weights\":[]}}", "policy.weights: expected an object");
    CHECK_ERR("{\"policy\":5}", "policy: expected an object");
    CHECK_ERR("{\"workers\":65}", "workers: expected an integer in [0, 64]");
    CHECK_ERR("{\"workers\":-1}", "workers: expected an integer in [0, 64]");
    CHECK_ERR("{\"fingerprint\":{\"block_bytes\":8}}",
              "fingerprint.block_bytes: expected an integer in [16, 4096]");
    CHECK_ERR("{\"fingerprint\":{\"max_blocks\":1025}}",
              "fingerprint.max_blocks: expected an integer in [1, 1024]");
    CHECK_ERR("{\"index\":{\"bytes_per_token\":0}}",
              "index.bytes_per_token: expected a number in (0, 1024]");
    CHECK_ERR("{\"scrape\":{\"interval_ms\":0}}",
              "scrape.interval_ms: expected an integer in [1, 60000]");
    CHECK_ERR("{\"scrape\":{\"timeout_ms\":1e300}}",
              "scrape.timeout_ms: expected an integer in [1, 600000]");
    CHECK_ERR("{\"access_log\":5}", "access_log: expected a string of at most 255 bytes");
    CHECK_ERR("{\"listen\":\"8080\"}",
              "listen: expected \"host:port\", got \"8080\" (missing port)");
    CHECK_ERR("{\"listen\":\"0.0.0.0:99999\"}",
              "listen: expected \"host:port\", got \"0.0.0.0:99999\" (port out of range)");
    CHECK_ERR("{\"admin\":{\"token\":\"a b\"}}",
              "admin.token: expected printable ASCII without spaces");
    CHECK_ERR("{\"admin\":{\"port\":1}}", "admin: unknown key \"port\"");
    /* a failed parse leaves the config as it was */
    CHECK_EQ(parse("{\"workers\":3}"), 0);
    CHECK_EQ(parse("{\"workers\":5,\"policy\":{\"mode\":\"x\"}}"), -1);
    CHECK_EQ(cfg.workers, 3);
    /* admin listener off */
    CHECK_EQ(parse("{\"admin\":{\"listen\":\"\"},\"listen\":\":8080\"}"), 0);
    CHECK_STR(cfg.admin_listen, "");
    CHECK_STR(cfg.listen, ":8080");
}

TEST(pod_errors)
{
    CHECK_ERR("{\"pods\":{}}", "pods: expected an array");
    CHECK_ERR("{\"pods\":[{}]}", "pods[0]: missing key \"url\"");
    CHECK_ERR("{\"pods\":[5]}", "pods[0]: expected an object");
    CHECK_ERR("{\"pods\":[{\"url\":8000}]}",
              "pods[0].url: expected a string \"http://host:port\"");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"name\":\"p\"},"
              "{\"url\":\"http://10.0.0.2:1\",\"name\":\"p\"}]}",
              "pods[1].name: duplicate pod name \"p\" (also pods[0])");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://127.0.0.1:1\"},{\"url\":\"http://127.0.0.1:1/\","
              "\"name\":\"q\"}]}",
              "pods[1].url: same address as pods[0]");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"engine\":\"tgi\"}]}",
              "pods[0].engine: unknown engine \"tgi\" (vllm, sglang, trtllm)");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"name\":\"a/b\"}]}",
              "pods[0].name: \"a/b\": no spaces, control bytes, or / \" \\ % ? #");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"name\":\"\"}]}",
              "pods[0].name: expected a non-empty string of at most 63 bytes");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"models\":\"m\"}]}",
              "pods[0].models: expected an array of model names");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"models\":[]}]}",
              "pods[0].models: expected at least one name (or leave \"models\" out)");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"models\":[\"m\",1]}]}",
              "pods[0].models[1]: expected a non-empty string of at most 127 bytes");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"models\":[\"m\",\"m\"]}]}",
              "pods[0].models[1]: duplicate name \"m\"");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"models\":[\"1\",\"2\",\"3\",\"4\","
              "\"5\",\"6\",\"7\",\"8\",\"9\"]}]}",
              "pods[0].models: at most 8 names");
    /* more than POD_MAX pods */
    size_t cap = (POD_MAX + 2) * 40, n = 0;
    char *big = malloc(cap);
    n += (size_t)snprintf(big + n, cap - n, "{\"pods\":[");
    for (int i = 0; i <= POD_MAX; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s{\"url\":\"http://10.0.%d.%d:80\"}",
                              i ? "," : "", i / 256, i % 256);
    snprintf(big + n, cap - n, "]}");
    CHECK_ERR(big, "pods: at most 512 pods");
    free(big);
}

TEST(pod_from_url)
{
    struct gw_pod_cfg p;
    char e[256];
    CHECK_EQ(gw_pod_from_url("http://127.0.0.1:8000", &p, e, sizeof(e)), 0);
    CHECK_STR(p.host, "127.0.0.1");
    CHECK_EQ(p.port, 8000);
    CHECK_STR(p.name, "127.0.0.1:8000");
    CHECK_EQ(p.engine, POD_ENGINE_VLLM);
    CHECK_EQ(p.nmodels, 0);
    CHECK_EQ(gw_pod_from_url("http://127.0.0.1:8000/", &p, e, sizeof(e)), 0);
    CHECK_EQ(p.port, 8000);
    CHECK_EQ(gw_pod_from_url("http://[::1]:65535", &p, e, sizeof(e)), 0);
    CHECK_STR(p.host, "::1");
    CHECK_STR(p.name, "[::1]:65535");
    CHECK_EQ(p.port, 65535);
    CHECK_EQ(gw_pod_from_url("http://localhost:1", &p, e, sizeof(e)), 0);
    CHECK_STR(p.name, "localhost:1");
    CHECK_EQ(gw_pod_from_url("http://pod-0.vllm.svc.cluster.local:8000", &p, e,
                             sizeof(e)), 0);
    CHECK_STR(p.host, "pod-0.vllm.svc.cluster.local");

    static const struct {
        const char *url, *why;
    } badv[] = {
        {"ftp://x", NULL},
        {"HTTP://a:1", NULL},
        {"https://a:1", NULL},
        {"", NULL},
        {"http://", "missing port"},
        {"http://a", "missing port"},
        {"http://a:", "missing port"},
        {"http://:80", "missing host"},
        {"http://a:0", "port out of range"},
        {"http://a:65536", "port out of range"},
        {"http://a:123456", "port out of range"},
        {"http://a:+80", "port is not a number"},
        {"http://a: 80", "port is not a number"},
        {"http://a:80/v1", "no path, user or query allowed"},
        {"http://a:80//", "no path, user or query allowed"},
        {"http://u@a:80", "no path, user or query allowed"},
        {"http://a:80?x=1", "no path, user or query allowed"},
        {"http://::1:80", "IPv6 address without brackets"},
        {"http://[::1]80", "bad [IPv6]:port"},
        {"http://[::1", "bad [IPv6]:port"},
        {"http://[zz]:80", "bad IPv6 address"},
        {"http://[]:80", "missing host"},
        {"http://1.2.3:80", "bad IPv4 address"},
        {"http://256.1.1.1:80", "bad IPv4 address"},
        {"http://-a:80", "bad host name"},
        {"http://a-:80", "bad host name"},
        {"http://a..b:80", "bad host name"},
        {"http://a_b:80", "bad host name"},
        {"http://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:80",
         "host too long"},
    };
    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
        char want[256];
        if (badv[i].why)
            snprintf(want, sizeof(want), "expected \"http://host:port\", got \"%s\" (%s)",
                     badv[i].url, badv[i].why);
        else
            snprintf(want, sizeof(want), "expected \"http://host:port\", got \"%s\"",
                     badv[i].url);
        e[0] = 0;
        CHECK_EQ(gw_pod_from_url(badv[i].url, &p, e, sizeof(e)), -1);
        CHECK_STR(e, want);
        if (strcmp(e, want))
            fprintf(stderr, "    (url %s)\n", badv[i].url);
    }
    CHECK_EQ(gw_pod_from_url(NULL, &p, e, sizeof(e)), -1);
    /* a tiny error buffer is never overrun */
    char tiny[8];
    CHECK_EQ(gw_pod_from_url("ftp://x", &p, tiny, sizeof(tiny)), -1);
    CHECK_EQ(strlen(tiny), 7);
}

TEST(resolve)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char e[256];
    CHECK_EQ(hostport_resolve("localhost", 80, &ss, &len, e, sizeof(e)), 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), 80);
    CHECK_EQ(hostport_resolve("::1", 81, &ss, &len, e, sizeof(e)), 0);
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK_EQ(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 81);
}

TEST(load_file)
{
    char path[] = "/tmp/kvgate-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *bad_cfg = "{\n \"scrape\": {\"interval_ms\": -5}\n}\n";
    CHECK_EQ(write(fd, bad_cfg, strlen(bad_cfg)), (long long)strlen(bad_cfg));
    close(fd);
    CHECK_EQ(gw_config_load(path, &cfg, err, sizeof(err)), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s: scrape.interval_ms: expected an integer in [1, 60000]",
             path);
    CHECK_STR(err, want);
    FILE *f = fopen(path, "w");
    fputs(FULL, f);
    fclose(f);
    CHECK_EQ(gw_config_load(path, &cfg, err, sizeof(err)), 0);
    CHECK_EQ(cfg.npods, 3);
    unlink(path);
    CHECK_EQ(gw_config_load(path, &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    CHECK_STR(err, want);
}

TEST(policy_json_round_trip)
{
    CHECK_EQ(parse(FULL), 0);
    struct gw_policies a = cfg.policies, b;
    cJSON *j = gwc_policies_json(&a);
    CHECK(j != NULL);
    /* overrides carry only what differs from the global policy */
    const cJSON *m1 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "overrides"), "m1");
    CHECK(m1 && cJSON_GetArraySize(m1) == 2);
    CHECK_STR(cJSON_GetObjectItem(m1, "mode")->valuestring, "round-robin");
    CHECK_EQ(gwc_policies_parse(j, "policy", &b, err, sizeof(err)), 0);
    CHECK(memcmp(&a.global, &b.global, sizeof(a.global)) == 0);
    CHECK_EQ(b.noverrides, 2);
    for (uint32_t i = 0; i < 2; i++) {
        CHECK_STR(a.overrides[i].model, b.overrides[i].model);
        CHECK(memcmp(&a.overrides[i].policy, &b.overrides[i].policy,
                     sizeof(a.overrides[i].policy)) == 0);
    }
    cJSON_Delete(j);
    /* a bare body (admin API) has no path prefix */
    cJSON *o = cJSON_Parse("{\"url\":\"http://x:1/\",\"name\":\"n\",\"mdl\":1}");
    struct gw_pod_cfg p;
    CHECK_EQ(gwc_pod_parse(o, "", &p, err, sizeof(err)), -1);
    CHECK_STR(err, "unknown key \"mdl\" at top level");
    cJSON_Delete(o);
    o = cJSON_Parse("{\"url\":\"http://x:1/y\"}");
    CHECK_EQ(gwc_pod_parse(o, "", &p, err, sizeof(err)), -1);
    CHECK_STR(err, "url: expected \"http://host:port\", got \"http://x:1/y\" "
                   "(no path, user or query allowed)");
    cJSON_Delete(o);
}

/* splice: mode, budget, per-model modes, and their errors */
TEST(splice_keys)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.splice_mode, GW_SPLICE_AUTO);
    CHECK_EQ(cfg.splice_budget, 4u << 20);
    CHECK_EQ(cfg.nsplice_models, 0);
    CHECK_EQ(parse("{\"splice\": {\"mode\": \"on\", \"budget_bytes\": 65536,"
                   " \"models\": {\"a\": \"off\", \"org/b\": \"auto\"}}}"), 0);
    CHECK_EQ(cfg.splice_mode, GW_SPLICE_ON);
    CHECK_EQ(cfg.splice_budget, 65536);
    CHECK_EQ(cfg.nsplice_models, 2);
    CHECK_STR(cfg.splice_models[0].model, "a");
    CHECK_EQ(cfg.splice_models[0].mode, GW_SPLICE_OFF);
    CHECK_STR(cfg.splice_models[1].model, "org/b");
    CHECK_EQ(cfg.splice_models[1].mode, GW_SPLICE_AUTO);
    CHECK_ERR("{\"splice\": {\"mode\": \"fast\"}}",
              "splice.mode: unknown mode \"fast\" (auto, on, off)");
    CHECK_ERR("{\"splice\": {\"mode\": true}}", "splice.mode: expected \"auto\", \"on\" or \"off\"");
    CHECK_EQ(parse("{\"splice\": {\"budget_bytes\": 1000}}"), -1);
    CHECK(strstr(err, "splice.budget_bytes") != NULL);
    CHECK_ERR("{\"splice\": {\"budget\": 1}}", "splice: unknown key \"budget\"");
    CHECK_EQ(parse("{\"splice\": {\"models\": {\"m\": \"maybe\"}}}"), -1);
    CHECK(strstr(err, "splice.models.m: unknown mode") != NULL);
}

/* issue 9: a non-loopback admin listener needs a token or admin.insecure */
TEST(admin_exposure)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.admin_insecure, 0);
    CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), 0); /* 127.0.0.1 */
    static const char *open_addrs[] = {"0.0.0.0:9090", ":9090", "10.1.2.3:9090", "[::]:9090",
                                       "admin.example.com:9090"};
    for (size_t i = 0; i < sizeof(open_addrs) / sizeof(open_addrs[0]); i++) {
        char j[160];
        snprintf(j, sizeof(j), "{\"admin\":{\"listen\":\"%s\"}}", open_addrs[i]);
        CHECK_EQ(parse(j), 0);
        err[0] = 0;
        CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), -1);
        CHECK(strstr(err, "admin.token") && strstr(err, "admin.insecure"));
        CHECK(strstr(err, open_addrs[i]) != NULL);
    }
    static const char *loop_addrs[] = {"127.0.0.1:9090", "127.3.4.5:1", "[::1]:9090",
                                       "localhost:9090", "[::ffff:127.0.0.1]:9090"};
    for (size_t i = 0; i < sizeof(loop_addrs) / sizeof(loop_addrs[0]); i++) {
        char j[160];
        snprintf(j, sizeof(j), "{\"admin\":{\"listen\":\"%s\"}}", loop_addrs[i]);
        CHECK_EQ(parse(j), 0);
        CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), 0);
    }
    CHECK_EQ(parse("{\"admin\":{\"listen\":\"0.0.0.0:9090\",\"token\":\"t\"}}"), 0);
    CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), 0);
    CHECK_EQ(parse("{\"admin\":{\"listen\":\"0.0.0.0:9090\",\"insecure\":true}}"), 0);
    CHECK_EQ(cfg.admin_insecure, 1);
    CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), 0);
    CHECK_EQ(parse("{\"admin\":{\"listen\":\"\"}}"), 0); /* off */
    CHECK_EQ(gw_config_check_admin(&cfg, NULL, err, sizeof(err)), 0);
    /* a reload checks the new token against the address in use */
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(gw_config_check_admin(&cfg, "0.0.0.0:9090", err, sizeof(err)), -1);
    CHECK_ERR("{\"admin\":{\"insecure\":1}}", "admin.insecure: expected true or false");
}

TEST(metrics_keys)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.tenant_from_user, 0);
    CHECK_EQ(parse("{\"metrics\":{\"tenant_from_user\":true}}"), 0);
    CHECK_EQ(cfg.tenant_from_user, 1);
    CHECK_ERR("{\"metrics\":{\"tenant_from_user\":\"yes\"}}",
              "metrics.tenant_from_user: expected true or false");
    CHECK_ERR("{\"metrics\":{\"tenants\":1}}", "metrics: unknown key \"tenants\"");
}

/* issue 13: accounting.enabled (on by default), a restart key;
 * request_usage cannot ask for usage nobody reads */
TEST(accounting_enabled_key)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.accounting, 1);
    CHECK_EQ(parse("{\"accounting\":{\"enabled\":false}}"), 0);
    CHECK_EQ(cfg.accounting, 0);
    CHECK_EQ(cfg.request_usage, 0);
    CHECK_EQ(parse("{\"accounting\":{\"enabled\":true,\"request_usage\":true}}"), 0);
    CHECK_EQ(cfg.accounting, 1);
    CHECK_EQ(cfg.request_usage, 1);
    CHECK_ERR("{\"accounting\":{\"enabled\":0}}", "accounting.enabled: expected true or false");
    CHECK_ERR("{\"accounting\":{\"enabled\":false,\"request_usage\":true}}",
              "accounting.request_usage: needs accounting.enabled: true (it asks pods for the "
              "usage accounting reads)");
    static struct gw_config a, b;
    char out[256];
    gw_config_defaults(&a);
    b = a;
    b.accounting = 0;
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 1);
    CHECK_STR(out, "accounting.enabled");
}

/* issue 13: the guarded rollout's section */
TEST(rollout_keys)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.rollout.nsteps, 5);
    CHECK_NEAR(cfg.rollout.steps[0], 1, 1e-9);
    CHECK_EQ(cfg.rollout.hold_ms, 60000);
    CHECK_EQ(parse("{\"rollout\":{\"steps\":[10,100],\"hold_ms\":2000,\"min_samples\":7,"
                   "\"ttft_p99_tolerance\":0.5,\"itl_p50_tolerance\":0.1,"
                   "\"error_tolerance\":0.02,\"hit_rate_tolerance\":0.03,"
                   "\"latency_slack_ms\":1}}"),
             0);
    CHECK_EQ(cfg.rollout.nsteps, 2);
    CHECK_NEAR(cfg.rollout.steps[0], 10, 1e-9);
    CHECK_NEAR(cfg.rollout.steps[1], 100, 1e-9);
    CHECK_EQ(cfg.rollout.hold_ms, 2000);
    CHECK_EQ(cfg.rollout.min_samples, 7);
    CHECK_NEAR(cfg.rollout.tol_ttft_p99, 0.5, 1e-9);
    CHECK_NEAR(cfg.rollout.tol_itl_p50, 0.1, 1e-9);
    CHECK_NEAR(cfg.rollout.tol_error, 0.02, 1e-9);
    CHECK_NEAR(cfg.rollout.tol_hit, 0.03, 1e-9);
    CHECK_NEAR(cfg.rollout.slack_ms, 1, 1e-9);
    CHECK_EQ(rollout_cfg_check(&cfg.rollout, NULL), 0);
    CHECK_ERR("{\"rollout\":{\"steps\":[5,1,100]}}",
              "rollout.steps[1]: steps must increase (1 after 5)");
    CHECK_ERR("{\"rollout\":{\"steps\":[5,50]}}", "rollout.steps: the last step must be 100");
    CHECK_ERR("{\"rollout\":{\"steps\":[100]}}", "rollout.steps: expected 2 to 16 steps, got 1");
    CHECK_ERR("{\"rollout\":{\"steps\":[0,100]}}", "rollout.steps[0]: expected a number in (0, 100]");
    CHECK_ERR("{\"rollout\":{\"steps\":\"1,100\"}}", 
              "rollout.steps: expected an array of percents, e.g. [1, 5, 25, 50, 100]");
    CHECK_ERR("{\"rollout\":{\"hold_ms\":10}}",
              "rollout.hold_ms: expected an integer in [1000, 86400000]");
    CHECK_ERR("{\"rollout\":{\"hit_rate_tolerance\":2}}", 
              "rollout.hit_rate_tolerance: expected a number in [0, 1]");
    CHECK_ERR("{\"rollout\":{\"share\":1}}", "rollout: unknown key \"share\"");
    /* a candidate policy, with the policy's own keys and errors */
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.has_candidate, 0);
    CHECK_EQ(parse("{\"rollout\":{\"candidate\":{\"mode\":\"token-load\",\"bounded_load\":1.5,"
                   "\"overrides\":{\"m\":{\"mode\":\"round-robin\"}}}}}"),
             0);
    CHECK_EQ(cfg.has_candidate, 1);
    CHECK_EQ(cfg.candidate.global.mode, POLICY_TOKEN_LOAD);
    CHECK_NEAR(cfg.candidate.global.bounded_load, 1.5, 1e-12);
    CHECK_EQ(cfg.candidate.noverrides, 1);
    CHECK_EQ(gw_policies_for(&cfg.candidate, "m")->mode, POLICY_ROUND_ROBIN);
    CHECK_EQ(cfg.policies.global.mode, POLICY_PREFIX_AWARE); /* the policy in force untouched */
    CHECK_ERR("{\"rollout\":{\"candidate\":{\"mode\":\"fast\"}}}",
              "rollout.candidate.mode: unknown mode \"fast\" (prefix-aware, least-request, "
              "round-robin, random, token-load)");
}

/* issue 11: KV events per pod, and the subscriber's section */
TEST(kv_events_keys)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.kv_max_entries, 1u << 20);
    CHECK_EQ(cfg.kv_replay_timeout_ms, 2000);
    CHECK_EQ(cfg.kv_silence_ms, 3000);
    CHECK_EQ(cfg.kv_silence_tokens, 4096);
    CHECK_EQ(parse("{\"pods\":[{\"url\":\"http://10.0.0.1:8000\","
                   "\"kv_events\":\"tcp://10.0.0.1:5557\",\"kv_replay\":\"tcp://10.0.0.1:5558\","
                   "\"kv_topic\":\"kv@\"},{\"url\":\"http://10.0.0.2:8000\"}],"
                   "\"kv_events\":{\"max_entries\":4096,\"replay_timeout_ms\":50,"
                   "\"silence_ms\":100,\"silence_tokens\":64}}"),
             0);
    CHECK_STR(cfg.pods[0].kv_events, "tcp://10.0.0.1:5557");
    CHECK_STR(cfg.pods[0].kv_replay, "tcp://10.0.0.1:5558");
    CHECK_STR(cfg.pods[0].kv_topic, "kv@");
    CHECK_STR(cfg.pods[1].kv_events, "");
    CHECK_EQ(cfg.kv_max_entries, 4096);
    CHECK_EQ(cfg.kv_replay_timeout_ms, 50);
    CHECK_EQ(cfg.kv_silence_ms, 100);
    CHECK_EQ(cfg.kv_silence_tokens, 64);
    CHECK_EQ(parse("{\"pods\":[{\"url\":\"http://10.0.0.1:8000\","
                   "\"kv_events\":\"ipc:///run/vllm-kv\"}]}"),
             0);
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"kv_events\":\"udp://x:1\"}]}",
              "pods[0].kv_events: \"udp://x:1\": expected tcp://host:port or ipc://path");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"kv_events\":\"tcp://x\"}]}",
              "pods[0].kv_events: \"tcp://x\": missing port");
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"kv_replay\":\"tcp://x:2\"}]}",
              "pods[0]: \"kv_replay\" needs \"kv_events\"");
    CHECK_ERR("{\"kv_events\":{\"max_entries\":10}}",
              "kv_events.max_entries: expected an integer in [1024, 268435456]");
    CHECK_ERR("{\"kv_events\":{\"window\":1}}", "kv_events: unknown key \"window\"");
}

/* issue 12: pods[].h2c, what the bypass splices h2c to */
TEST(pod_h2c_key)
{
    CHECK_EQ(parse("{\"pods\":[{\"url\":\"http://10.0.0.1:8000\",\"h2c\":true},"
                   "{\"url\":\"http://10.0.0.2:8000\",\"h2c\":false},"
                   "{\"url\":\"http://10.0.0.3:8000\"}]}"),
             0);
    CHECK_EQ(cfg.pods[0].h2c, 1);
    CHECK_EQ(cfg.pods[1].h2c, 0);
    CHECK_EQ(cfg.pods[2].h2c, 0); /* vLLM's and SGLang's servers speak HTTP/1.1 only */
    CHECK_ERR("{\"pods\":[{\"url\":\"http://10.0.0.1:1\",\"h2c\":1}]}",
              "pods[0].h2c: expected true or false");
}

/* issue 11: "tokenizers", per model or "*" */
TEST(tokenizer_keys)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.ntokenizers, 0);
    CHECK_EQ(parse("{\"tokenizers\":{\"*\":\"pseudo\",\"meta-llama/Llama-3.1-8B-Instruct\":"
                   "{\"file\":\"/m/tokenizer.json\",\"config\":\"/m/tokenizer_config.json\"},"
                   "\"qwen\":{\"file\":\"/q/tokenizer.json\"}}}"),
             0);
    CHECK_EQ(cfg.ntokenizers, 3);
    CHECK_STR(cfg.tokenizers[0].model, "*");
    CHECK_EQ(cfg.tokenizers[0].pseudo, 1);
    CHECK_STR(cfg.tokenizers[1].model, "meta-llama/Llama-3.1-8B-Instruct");
    CHECK_EQ(cfg.tokenizers[1].pseudo, 0);
    CHECK_STR(cfg.tokenizers[1].file, "/m/tokenizer.json");
    CHECK_STR(cfg.tokenizers[1].config, "/m/tokenizer_config.json");
    CHECK_STR(cfg.tokenizers[2].config, "");
    CHECK_ERR("{\"tokenizers\":[]}", "tokenizers: expected an object");
    CHECK_ERR("{\"tokenizers\":{\"m\":\"bpe\"}}",
              "tokenizers.m: expected \"pseudo\" or {\"file\": ..., \"config\": ...}");
    CHECK_ERR("{\"tokenizers\":{\"m\":{\"config\":\"/c.json\"}}}",
              "tokenizers.m: \"file\" (tokenizer.json) is required");
    CHECK_ERR("{\"tokenizers\":{\"m\":{\"file\":\"/t.json\",\"vocab\":1}}}",
              "tokenizers.m.vocab: unknown key (file, config)");
    CHECK_ERR("{\"tokenizers\":{\"m\":{\"file\":\"\"}}}",
              "tokenizers.m.file: expected a file path of 1-255 bytes");
    CHECK_ERR("{\"tokenizers\":{\"\":\"pseudo\"}}", "tokenizers[\"\"]: model names are 1-127 bytes");
    /* the limit on entries, crossed by one */
    char big[4096] = "{\"tokenizers\":{";
    for (int i = 0; i <= GW_MAX_OVERRIDES; i++)
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s\"m%d\":\"pseudo\"",
                 i ? "," : "", i);
    strcat(big, "}}");
    CHECK_ERR(big, "tokenizers: at most 32 models");
    big[strlen(big) - 2] = 0; /* drop the last entry: 32 */
    *strrchr(big, ',') = 0;
    strcat(big, "}}");
    CHECK_EQ(parse(big), 0);
    CHECK_EQ(cfg.ntokenizers, GW_MAX_OVERRIDES);
}

/* issue 9: bounds on what pods send and on the access log's queue */
TEST(scrape_and_log_bounds)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_EQ(cfg.scrape_max_page, 4u << 20);
    CHECK_EQ(cfg.access_log_buffer, 1u << 20);
    CHECK_EQ(parse("{\"scrape\":{\"max_page_bytes\":1048576},"
                   "\"access_log_buffer_bytes\":65536}"), 0);
    CHECK_EQ(cfg.scrape_max_page, 1u << 20);
    CHECK_EQ(cfg.access_log_buffer, 65536);
    CHECK_EQ(parse("{\"scrape\":{\"max_page_bytes\":33554432}}"), -1);
    CHECK(strstr(err, "scrape.max_page_bytes") != NULL);
    CHECK_EQ(parse("{\"access_log_buffer_bytes\":100}"), -1);
    CHECK(strstr(err, "access_log_buffer_bytes") != NULL);
}

/* issue 12: the bypass workers' decision channel */
TEST(bypass_decide_socket)
{
    CHECK_EQ(parse("{}"), 0);
    CHECK_STR(cfg.bypass_decide_socket, "");
    CHECK_EQ(cfg.bypass_max_outstanding, 4096); /* a worker's flow table */
    CHECK_EQ(parse("{\"bypass\":{\"decide_socket\":\"/run/kvgate/decide.sock\","
                   "\"max_outstanding\":4}}"), 0);
    CHECK_STR(cfg.bypass_decide_socket, "/run/kvgate/decide.sock");
    CHECK_EQ(cfg.bypass_max_outstanding, 4);
    CHECK_EQ(parse("{\"bypass\":{\"decide_socket\":\"\"}}"), 0);
    CHECK_STR(cfg.bypass_decide_socket, "");
    /* a unix socket path is at most 107 bytes (sun_path) */
    char big[512];
    snprintf(big, sizeof(big), "{\"bypass\":{\"decide_socket\":\"/%0107d\"}}", 0);
    CHECK_ERR(big, "bypass.decide_socket: expected a string of at most 107 bytes");
    snprintf(big, sizeof(big), "{\"bypass\":{\"decide_socket\":\"/%0106d\"}}", 0);
    CHECK_EQ(parse(big), 0);
    CHECK_EQ(strlen(cfg.bypass_decide_socket), 107);
    CHECK_ERR("{\"bypass\":{\"decide_socket\":7}}",
              "bypass.decide_socket: expected a string of at most 107 bytes");
    CHECK_EQ(parse("{\"bypass\":{\"max_outstanding\":0}}"), -1);
    CHECK(strstr(err, "bypass.max_outstanding") != NULL);
    CHECK_EQ(parse("{\"bypass\":{\"max_outstanding\":65537}}"), -1);
    CHECK_EQ(parse("{\"bypass\":{\"decide\":\"x\"}}"), -1);
    CHECK(strstr(err, "decide") != NULL);
    /* a restart key */
    static struct gw_config a, b;
    char out[256];
    gw_config_defaults(&a);
    b = a;
    snprintf(b.bypass_decide_socket, sizeof(b.bypass_decide_socket), "/tmp/d.sock");
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 1);
    CHECK_STR(out, "bypass.decide_socket");
}

/* A reload applies pods, policy, scrape, admin.token / insecure and
 * metrics; every other key that changed is named as waiting for a restart
 * (issue 10: splice.*, outlier.*, retry.* and half of limits.* were
 * dropped without a word). */
TEST(restart_keys)
{
    static struct gw_config a, b;
    char out[512];
    CHECK_EQ(gw_config_parse(FULL, strlen(FULL), &a, err, sizeof(err)), 0);
    b = a;
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 0);
    CHECK_STR(out, "");
    /* live keys only */
    b.scrape_ms = 7;
    b.admin_token[0] = 0;
    b.tenant_from_user = 1;
    b.npods = 1;
    b.policies.global.mode = POLICY_RANDOM;
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 0);
    /* restart keys, in the table's order */
    b.splice_mode = GW_SPLICE_OFF;
    b.send_timeout_ms = 1234;
    b.outlier.consecutive = 9;
    b.outlier.budget_percent = 1;
    snprintf(b.listen, sizeof(b.listen), "127.0.0.1:1");
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 5);
    CHECK_STR(out, "listen, limits.send_timeout_ms, outlier.consecutive_failures, "
                   "retry.budget_percent, splice.mode");
    /* a per-model splice mode, by content; strings by value */
    b = a;
    CHECK_EQ(parse("{\"splice\":{\"models\":{\"m\":\"off\"}}}"), 0);
    CHECK_EQ(gw_config_restart_keys(&a, &cfg, out, sizeof(out)) >= 1, 1);
    CHECK(strstr(out, "splice.models") != NULL);
    memset(b.listen, 'x', sizeof(b.listen));
    snprintf(b.listen, sizeof(b.listen), "%s", a.listen); /* junk after the NUL */
    CHECK_EQ(gw_config_restart_keys(&a, &b, out, sizeof(out)), 0);
    /* a small buffer is never overrun */
    b.workers = 9;
    b.max_blocks = 9;
    char tiny[10];
    CHECK_EQ(gw_config_restart_keys(&a, &b, tiny, sizeof(tiny)), 2);
    CHECK(strlen(tiny) < sizeof(tiny));
}

TEST(listen_check)
{
    CHECK_EQ(gw_config_check_listen("127.0.0.1:80", 0, err, sizeof(err)), 0);
    CHECK_EQ(gw_config_check_listen(":80", 0, err, sizeof(err)), 0);
    CHECK_EQ(gw_config_check_listen("", 1, err, sizeof(err)), 0);
    CHECK_EQ(gw_config_check_listen("", 0, err, sizeof(err)), -1);
    CHECK_EQ(gw_config_check_listen("localhost:99999", 0, err, sizeof(err)), -1);
    CHECK_STR(err, "expected \"host:port\", got \"localhost:99999\" (port out of range)");
}

int main(void)
{
    RUN(restart_keys);
    RUN(bypass_decide_socket);
    RUN(listen_check);
    RUN(scrape_and_log_bounds);
    RUN(defaults);
    RUN(admin_exposure);
    RUN(metrics_keys);
    RUN(accounting_enabled_key);
    RUN(kv_events_keys);
    RUN(pod_h2c_key);
    RUN(tokenizer_keys);
    RUN(splice_keys);
    RUN(full_config);
    RUN(overrides);
    RUN(syntax_errors);
    RUN(key_errors);
    RUN(type_and_range_errors);
    RUN(pod_errors);
    RUN(pod_from_url);
    RUN(resolve);
    RUN(load_file);
    RUN(rollout_keys);
    RUN(policy_json_round_trip);
    return harness_done();
}
