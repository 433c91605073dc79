/*
 * handlers.h - one function per Kafka API runnel serves, grouped into files
 * by concern (api_versions.c, metadata.c, topic_admin.c, configs.c).
 *
 * Each handler decodes its request with dispatch_decode(), does the work and
 * answers with dispatch_respond(). Handlers run on the connection's reactor
 * thread and must not block on the network.
 */
#ifndef RUNNEL_HANDLERS_H
#define RUNNEL_HANDLERS_H

#include "dispatch.h"

void handle_api_versions(struct broker *b, struct request *req, struct kreader *body);
void handle_api_versions_unsupported(struct broker *b, struct request *req);
void handle_metadata(struct broker *b, struct request *req, struct kreader *body);
void handle_describe_cluster(struct broker *b, struct request *req, struct kreader *body);
void handle_create_topics(struct broker *b, struct request *req, struct kreader *body);
void handle_delete_topics(struct broker *b, struct request *req, struct kreader *body);
void handle_create_partitions(struct broker *b, struct request *req, struct kreader *body);
void handle_describe_configs(struct broker *b, struct request *req, struct kreader *body);
void handle_alter_configs(struct broker *b, struct request *req, struct kreader *body);
void handle_incremental_alter_configs(struct broker *b, struct request *req, struct kreader *body);
void handle_produce(struct broker *b, struct request *req, struct kreader *body);
void handle_fetch(struct broker *b, struct request *req, struct kreader *body);
void handle_list_offsets(struct broker *b, struct request *req, struct kreader *body);
void handle_offset_for_leader_epoch(struct broker *b, struct request *req, struct kreader *body);
void handle_find_coordinator(struct broker *b, struct request *req, struct kreader *body);
void handle_join_group(struct broker *b, struct request *req, struct kreader *body);
void handle_sync_group(struct broker *b, struct request *req, struct kreader *body);
void handle_heartbeat(struct broker *b, struct request *req, struct kreader *body);
void handle_leave_group(struct broker *b, struct request *req, struct kreader *body);
void handle_describe_groups(struct broker *b, struct request *req, struct kreader *body);
void handle_list_groups(struct broker *b, struct request *req, struct kreader *body);
void handle_delete_groups(struct broker *b, struct request *req, struct kreader *body);
void handle_delete_records(struct broker *b, struct request *req, struct kreader *body);
void handle_offset_commit(struct broker *b, struct request *req, struct kreader *body);
void handle_offset_fetch(struct broker *b, struct request *req, struct kreader *body);
void handle_offset_delete(struct broker *b, struct request *req, struct kreader *body);
void handle_init_producer_id(struct broker *b, struct request *req, struct kreader *body);
void handle_add_partitions_to_txn(struct broker *b, struct request *req, struct kreader *body);
void handle_add_offsets_to_txn(struct broker *b, struct request *req, struct kreader *body);
void handle_txn_offset_commit(struct broker *b, struct request *req, struct kreader *body);
void handle_end_txn(struct broker *b, struct request *req, struct kreader *body);
void handle_describe_producers(struct broker *b, struct request *req, struct kreader *body);
void handle_describe_transactions(struct broker *b, struct request *req, struct kreader *body);
void handle_list_transactions(struct broker *b, struct request *req, struct kreader *body);

#endif
