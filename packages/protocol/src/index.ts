/**
 * Generated gRPC/protobuf stubs for Tandem's API (tandem.v1) plus the small
 * helpers every side needs to pack trajectories. Everything under `gen/` is
 * produced by `pnpm gen:proto` and never edited by hand.
 */
export * from './gen/tandem/v1/run_service.js';
export {
  AckBatchRequest,
  AckBatchResponse,
  BatchState,
  ControlMessage,
  PromptGroup,
  PullBatchRequest,
  PullBatchResponse,
  RunEnded,
  SendWeights,
  TrainerHello,
  TrainerMessage,
  TrainerServiceClient,
  type TrainerServiceServer,
  TrainerServiceService,
  Trajectory,
  WeightsReady,
  WeightsSent,
  Welcome,
  batchStateFromJSON,
  batchStateToJSON,
} from './gen/tandem/v1/trainer_service.js';
export * from './packed-arrays.js';
