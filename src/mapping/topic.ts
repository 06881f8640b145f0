import { TopicError } from '../errors.js';
import { topicNameProblem } from '../protocol/mqtt.js';

/** Checks a topic name as a device would publish it (see topicNameProblem). */
export function assertTopicName(topic: string): void {
  const problem = topicNameProblem(topic);
  if (problem !== null) throw new TopicError(problem);
}
